#!/usr/bin/env bash
# Build and smoke-test kvv's container image on a machine with no Docker daemon and no
# container registry (github-action.md §6): podman + runc with a containers.conf that sets
# ulimits and cgroupfs, a Debian bookworm base made by mmdebstrap and `podman import`ed, and
# `podman build --isolation=chroot --build-arg BASE_IMAGE=localhost/...`.
#
# Idempotent: installs only missing tools, makes the base only when the image is missing,
# rebuilds the kvv image (layer cache makes a no-change rebuild quick), and recreates the
# smoke-run workspaces each time. Writes nothing inside the repository. Needs root.
#
# Usage: scripts/build-image-offline.sh [--no-smoke]
# Environment:
#   KVV_IMAGE        image to build          (default localhost/kvv:dev)
#   KVV_BASE_IMAGE   base image to use/make  (default localhost/kvv-base:bookworm)
#   KVV_IMAGE_WORK   scratch directory       (default ${TMPDIR:-/tmp}/kvv-image)
#   DEBIAN_MIRROR    mirror for mmdebstrap   (default http://deb.debian.org/debian)
# Exit code: 0 when the build and every smoke run pass, 1 otherwise.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE=${KVV_IMAGE:-localhost/kvv:dev}
BASE=${KVV_BASE_IMAGE:-localhost/kvv-base:bookworm}
WORK=${KVV_IMAGE_WORK:-${TMPDIR:-/tmp}/kvv-image}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CANARY=sk-canary-test-1234567890
SMOKE=1
[[ "${1:-}" == "--no-smoke" ]] && SMOKE=0

say() { printf '\n==> %s\n' "$*"; }
run() { printf '+ %s\n' "$*"; "$@"; }
FAILURES=0
check() {   # check DESCRIPTION COMMAND...: record a smoke assertion
    local what=$1; shift
    if "$@"; then printf '  ok   %s\n' "$what"; else printf '  FAIL %s\n' "$what"; FAILURES=$((FAILURES + 1)); fi
}

[[ $(id -u) == 0 ]] || { echo "error: run as root (mmdebstrap --mode=root, apt-get)" >&2; exit 1; }
mkdir -p "$WORK"

# --- tools -----------------------------------------------------------------------------------
missing=()
for pair in podman:podman runc:runc mmdebstrap:mmdebstrap; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    run apt-get update -q
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
else
    say "podman, runc and mmdebstrap already installed"
fi

# --- podman configuration (§6: the default crun/systemd/ulimit setup fails here) -------------
export CONTAINERS_CONF="$WORK/containers.conf"
cat > "$CONTAINERS_CONF" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
say "CONTAINERS_CONF=$CONTAINERS_CONF"

# --- base image ------------------------------------------------------------------------------
if podman image exists "$BASE"; then
    say "base image $BASE exists, not remaking it"
else
    say "making base image $BASE with mmdebstrap (about a minute)"
    # mmdebstrap picks the output format from the name's extension: keep it ending in .tar.
    rm -rf "$WORK/rootfs.tar" "$WORK/rootfs.partial.tar"
    run mmdebstrap --variant=minbase --include=python3,python3-pip,ca-certificates --mode=root \
        bookworm "$WORK/rootfs.partial.tar" "$MIRROR"
    mv "$WORK/rootfs.partial.tar" "$WORK/rootfs.tar"
    run podman import --change 'CMD ["/bin/bash"]' "$WORK/rootfs.tar" "$BASE"
    rm -f "$WORK/rootfs.tar"
fi

# --- the kvv image ---------------------------------------------------------------------------
# The CA bundle mount: TLS to PyPI is intercepted here, pip in the build needs the host's CAs.
say "building $IMAGE from $REPO"
build_start=$(date +%s)
run podman build --isolation=chroot \
    --volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
    --build-arg "BASE_IMAGE=$BASE" -t "$IMAGE" "$REPO"
say "built in $(( $(date +%s) - build_start )) s"
run podman image ls --filter "reference=$IMAGE" --filter "reference=$BASE"

((SMOKE)) || exit 0

# --- smoke runs ------------------------------------------------------------------------------
say "smoke: standalone --help (like kvv --help)"
set +e
out=$(podman run --rm "$IMAGE" --help 2>&1); rc=$?
set -e
check "--help exits 0 (got $rc)" test "$rc" = 0
check "--help prints kvv's usage" grep -q '^Usage: kvv' <<<"$out"

say "smoke: time podman run --rm $IMAGE --help"
time podman run --rm "$IMAGE" --help >/dev/null

say "smoke: standalone run --simulate"
set +e
podman run --rm "$IMAGE" run --simulate --output-dir /tmp/o > "$WORK/sim.out" 2>&1; rc=$?
set -e
tail -n 5 "$WORK/sim.out"
check "run --simulate exits 0 (got $rc)" test "$rc" = 0
set +e
podman run --rm "$IMAGE" run --simulate --output-dir /tmp/o --sim-fault ignore-temperature \
    > "$WORK/sim-fault.out" 2>&1; rc=$?
set -e
tail -n 5 "$WORK/sim-fault.out"
check "run --simulate --sim-fault ignore-temperature exits 1 (got $rc)" test "$rc" = 1

gh_run() {   # gh_run NAME [extra podman args...]: the action as GitHub runs it
    local name=$1; shift
    local ws="$WORK/ws-$name"
    rm -rf "$ws"; mkdir -p "$ws"
    set +e
    podman run --rm -v "$ws:/github/workspace" -w /github/workspace \
        -e GITHUB_ACTIONS=true \
        -e GITHUB_OUTPUT=/github/workspace/out.txt \
        -e GITHUB_STEP_SUMMARY=/github/workspace/summary.md \
        -e INPUT_SIMULATE=true \
        -e "INPUT_API-KEY=$CANARY" \
        -e PATH=utter-nonsense \
        "$@" "$IMAGE" > "$WORK/gh-$name.stdout" 2> "$WORK/gh-$name.stderr"
    GH_RC=$?
    set -e
    GH_WS=$ws
}
no_canary_in_files() { ! grep -rqF "$CANARY" "$1"; }
canary_only_in_mask() {   # the key appears on exactly one stdout line: the ::add-mask:: one
    [[ $(grep -cF "$CANARY" "$1") == 1 ]] && grep -qxF "::add-mask::$CANARY" "$1" \
        && ! grep -qF "$CANARY" "$2"
}
verdict_is() { grep -A1 '^verdict<<' "$1/out.txt" | tail -n 1 | grep -qx "$2"; }

say "smoke: GitHub mode, simulate (INPUT_API-KEY, PATH=utter-nonsense)"
gh_run pass
sed -n '1,3p' "$WORK/gh-pass.stdout"
check "exits 0 (got $GH_RC)" test "$GH_RC" = 0
check "out.txt has verdict=pass" verdict_is "$GH_WS" pass
check "summary.md written" test -s "$GH_WS/summary.md"
check "canary key in no workspace file" no_canary_in_files "$GH_WS"
check "canary key only in the ::add-mask:: line" canary_only_in_mask "$WORK/gh-pass.stdout" "$WORK/gh-pass.stderr"

say "smoke: GitHub mode, simulate-faults=ignore-temperature"
gh_run fault -e INPUT_SIMULATE-FAULTS=ignore-temperature
grep '^::error' "$WORK/gh-fault.stdout" || true
check "exits 1 (got $GH_RC)" test "$GH_RC" = 1
check "::error annotation printed" grep -q '^::error' "$WORK/gh-fault.stdout"
check "out.txt has verdict=fail" verdict_is "$GH_WS" fail
check "summary.md written" test -s "$GH_WS/summary.md"
check "canary key in no workspace file" no_canary_in_files "$GH_WS"
check "canary key only in the ::add-mask:: line" canary_only_in_mask "$WORK/gh-fault.stdout" "$WORK/gh-fault.stderr"

say "image size"
podman image ls --filter "reference=$IMAGE"
if ((FAILURES)); then
    say "$FAILURES smoke check(s) FAILED (outputs in $WORK)"; exit 1
fi
say "all smoke checks passed (outputs in $WORK)"
