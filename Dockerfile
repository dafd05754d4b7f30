# The kvv image: the GitHub action (entrypoint.py) and the plain CLI (`docker run IMAGE run …`).
# Offline builds can start from a local base: --build-arg BASE_IMAGE=localhost/debian-py:bookworm
# (such a base needs python3 and pip; Debian's python3 lives at /usr/bin/python3).
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}

# PIP_BREAK_SYSTEM_PACKAGES: a Debian base marks its python3 externally managed; here the
# image is the environment.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PIP_BREAK_SYSTEM_PACKAGES=1

# ENTRYPOINT needs an absolute interpreter path (a workflow may set a hostile PATH), and a
# Debian base has no /usr/local/bin/python: link it there.
RUN [ -x /usr/local/bin/python ] || ln -s /usr/bin/python3 /usr/local/bin/python

# Dependencies first: this layer is reused until requirements.txt changes.
COPY requirements.txt /tmp/requirements.txt
RUN python -m pip install --no-deps -r /tmp/requirements.txt && rm /tmp/requirements.txt

# Absolute paths, no WORKDIR: GitHub mounts the workspace over the working directory.
COPY pyproject.toml README.md entrypoint.py /app/
COPY kvv/ /app/kvv/
# The build backend lives only in pip's temporary build environment; nothing is left behind.
RUN python -m pip install --no-deps /app && rm -rf /app/build /app/*.egg-info

# No USER: GitHub runs Docker actions as root and its file commands (GITHUB_OUTPUT,
# GITHUB_STEP_SUMMARY) need it (docs: dockerfile-support#user); the entrypoint gives its
# output files to the workspace owner. Outside GitHub, run with --user "$(id -u):$(id -g)".
# checkov:skip=CKV_DOCKER_3:GitHub Docker actions must run as root
ENTRYPOINT ["/usr/local/bin/python", "/app/entrypoint.py"]
CMD ["--help"]
