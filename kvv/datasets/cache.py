"""The dataset cache: what the viewer API served, kept so a second run needs no network.

Layout, under KVV_CACHE_DIR (default $XDG_CACHE_HOME/kvv, else ~/.cache/kvv):

    datasets/<server>/<dataset>/<config>/<split>/
        manifest.json     {"kvv-cache": 1, server, dataset, config, split, num_rows, partial, images,
                           size, fetched_at, features, image_fields,
                           files: {"rows.jsonl": {sha256, size}, "images/<sha256>.<ext>": {sha256, size}}}
        rows.jsonl        {"row_idx": i, "row": {...}} per row, as served, each image cell replaced by
                          {"kvv-image": {file, sha256, mime, size, width, height}}
        images/<sha256>.<ext>   the image bytes as served (ext from the real mime type)

Each path part is percent-encoded (`echo840%2FOCRBench`, `standard%20%2810%20options%29`); the
server part is its host, `_port` and path. Keyed by server, so a mirror's or kvv's stand-in's
rows never pass for the public server's. An entry is written in a sibling `.partial-*` directory
and renamed into place whole; the manifest is written last. Reading checks every file's size
and sha256 against the manifest: a corrupt entry is `Corrupt`. Nothing here holds a token.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import quote

import httpx

from .images import EXTENSIONS, Image
from .specs import DatasetSpec

FORMAT = 1
MANIFEST = "manifest.json"
ROWS = "rows.jsonl"
IMAGE_KEY = "kvv-image"
_FILE = re.compile(r"rows\.jsonl|images/[0-9a-f]{64}\.(png|jpg|gif|webp)")


class Miss(Exception):
    """Nothing cached for this dataset."""


class Corrupt(Exception):
    """A cached entry that does not match its manifest (the message says which file and how)."""


def cache_root(cache_dir: str | os.PathLike[str] | None = None, environ: Mapping[str, str] = os.environ) -> Path:
    """The argument, else KVV_CACHE_DIR, else $XDG_CACHE_HOME/kvv, else ~/.cache/kvv."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if environ.get("KVV_CACHE_DIR"):
        return Path(environ["KVV_CACHE_DIR"]).expanduser()
    if environ.get("XDG_CACHE_HOME"):
        return Path(environ["XDG_CACHE_HOME"]).expanduser() / "kvv"
    return Path.home() / ".cache" / "kvv"


def _part(text: str) -> str:
    slug = quote(text, safe="")
    return "%2E" + slug[1:] if slug.startswith(".") else slug      # never `.` or `..`


def server_slug(server: str) -> str:
    url = httpx.URL(server)
    slug = (url.host or "server") + (f"_{url.port}" if url.port else "")
    path = url.path.strip("/")
    return _part(slug + (f"_{path}" if path else ""))


def entry_dir(root: Path, server: str, spec: DatasetSpec) -> Path:
    return root / "datasets" / server_slug(server) / _part(spec.id) / _part(spec.config) / _part(spec.split)


def _sha256_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class Staging:
    """An entry being written: `store` is the fetcher's image store (bytes to a file named by
    their sha256), `commit` writes rows and manifest and moves the entry into place."""

    def __init__(self, root: Path, server: str, spec: DatasetSpec):
        self.server, self.spec = server, spec
        self.final = entry_dir(root, server, spec)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.dir = self.final.parent / f".{self.final.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        (self.dir / "images").mkdir(parents=True)
        self.files: dict[str, dict[str, Any]] = {}

    def store(self, data: bytes, declared: str | None, width: int | None, height: int | None) -> Image:
        image = Image.from_bytes(data, declared, width=width, height=height, keep=False)
        name = f"images/{image.sha256}.{EXTENSIONS[image.mime]}"
        if name not in self.files:
            path = self.dir / name
            path.write_bytes(data)
            self.files[name] = {"sha256": image.sha256, "size": image.size}
        return Image(mime=image.mime, sha256=image.sha256, size=image.size, width=width, height=height,
                     declared_mime=image.declared_mime, path=self.dir / name)

    def commit(self, fetched: Any) -> Path:
        """Write rows.jsonl and the manifest, then rename the entry into place."""
        images = 0
        with open(self.dir / ROWS, "w", encoding="utf-8") as out:
            for index, row in fetched.rows:
                cells = {}
                for key, value in row.items():
                    if isinstance(value, Image):
                        images += 1
                        ref = {"file": f"images/{value.sha256}.{EXTENSIONS[value.mime]}", **value.describe()}
                        cells[key] = {IMAGE_KEY: ref}
                    else:
                        cells[key] = value
                out.write(json.dumps({"row_idx": index, "row": cells}, ensure_ascii=False) + "\n")
        sha, size = _sha256_file(self.dir / ROWS)
        self.files[ROWS] = {"sha256": sha, "size": size}
        manifest = {
            "kvv-cache": FORMAT, "server": self.server, "dataset": self.spec.id, "config": self.spec.config,
            "split": self.spec.split, "num_rows": len(fetched.rows), "num_rows_total": fetched.num_rows_total,
            "partial": fetched.partial, "images": images,
            "size": sum(f["size"] for f in self.files.values()),
            "fetched_at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "features": fetched.features, "image_fields": fetched.image_fields,
            "files": dict(sorted(self.files.items())),
        }
        (self.dir / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        old = None
        if self.final.exists():
            old = self.final.parent / f".{self.final.name}.old-{uuid.uuid4().hex[:8]}"
            try:
                os.replace(self.final, old)
            except FileNotFoundError:           # another process moved it away first
                old = None
        try:
            os.replace(self.dir, self.final)
        except OSError:
            if not (self.final / MANIFEST).is_file():
                raise
            # Another process put a complete entry in place between our two renames: keep theirs.
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.final

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def read_manifest(entry: Path) -> dict[str, Any]:
    """The manifest, its shape checked (Miss if there is none, Corrupt if it is unreadable)."""
    path = entry / MANIFEST
    if not path.is_file():
        raise Miss(str(entry))
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:     # UnicodeDecodeError is a ValueError
        raise Corrupt(f"{path}: unreadable ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("kvv-cache") != FORMAT:
        raise Corrupt(f"{path}: not a kvv cache manifest of format {FORMAT}")
    files = manifest.get("files")
    if not isinstance(files, dict) or ROWS not in files or not all(
            isinstance(k, str) and _FILE.fullmatch(k) and isinstance(v, dict) for k, v in files.items()):
        raise Corrupt(f"{path}: its file list is malformed")
    for key in ("dataset", "config", "split", "server", "fetched_at"):
        if not isinstance(manifest.get(key), str):
            raise Corrupt(f"{path}: `{key}` is missing")
    if not isinstance(manifest.get("num_rows"), int):
        raise Corrupt(f"{path}: `num_rows` is missing")
    return manifest


def read(root: Path, server: str, spec: DatasetSpec) -> tuple[dict[str, Any], list[tuple[int, dict[str, Any]]]]:
    """(manifest, rows) of a cached entry, every file verified; image cells become Images that
    read their file (and check its sha256 again) on demand. Miss or Corrupt."""
    entry = entry_dir(root, server, spec)
    manifest = read_manifest(entry)
    if (manifest["dataset"], manifest["config"], manifest["split"]) != (spec.id, spec.config, spec.split):
        raise Corrupt(f"{entry / MANIFEST}: it describes {manifest['dataset']} {manifest['config']}/"
                      f"{manifest['split']}, not {spec.label}")
    for name, info in manifest["files"].items():
        path = entry / name
        if not path.is_file():
            raise Corrupt(f"{path}: missing")
        try:
            sha, size = _sha256_file(path)
        except OSError as exc:
            raise Corrupt(f"{path}: unreadable ({exc.strerror or exc})") from None
        if size != info.get("size") or sha != info.get("sha256"):
            raise Corrupt(f"{path}: does not match the manifest (sha256 {sha[:12]}…, {size:,} bytes; expected "
                          f"{str(info.get('sha256'))[:12]}…, {info.get('size')} bytes)")
    rows = []
    try:
        with open(entry / ROWS, encoding="utf-8") as file:
            for number, line in enumerate(file, 1):
                try:
                    item = json.loads(line)
                    index, row = item["row_idx"], item["row"]
                    if not isinstance(index, int) or not isinstance(row, dict):
                        raise ValueError("not {row_idx, row}")
                    rows.append((index, {k: _image(entry, manifest, v) for k, v in row.items()}))
                except (ValueError, KeyError, TypeError, RecursionError) as exc:
                    raise Corrupt(f"{entry / ROWS}: line {number}: {exc}") from None
    except OSError as exc:
        raise Corrupt(f"{entry / ROWS}: unreadable ({exc.strerror or exc})") from None
    if len(rows) != manifest["num_rows"]:
        raise Corrupt(f"{entry / ROWS}: {len(rows)} rows; the manifest says {manifest['num_rows']}")
    return manifest, rows


def _image(entry: Path, manifest: dict[str, Any], value: Any) -> Any:
    if not (isinstance(value, dict) and IMAGE_KEY in value):
        return value
    ref = value[IMAGE_KEY]
    name = ref["file"]
    if name not in manifest["files"] or manifest["files"][name].get("sha256") != ref["sha256"]:
        raise ValueError(f"image {name} is not in the manifest")
    if ref["mime"] not in EXTENSIONS:
        raise ValueError(f"image {name}: unknown mime type {ref['mime']!r}")
    return Image(mime=ref["mime"], sha256=ref["sha256"], size=ref["size"], width=ref.get("width"),
                 height=ref.get("height"), declared_mime=ref.get("declared_mime"), path=entry / name)


def entries(root: Path) -> list[tuple[Path, dict[str, Any] | None, str | None]]:
    """Every cached entry: (directory, manifest or None, problem or None); manifests are read,
    files not hashed (`read` does that)."""
    out: list[tuple[Path, dict[str, Any] | None, str | None]] = []
    base = root / "datasets"
    if not base.is_dir():
        return out
    for path in sorted(base.rglob(MANIFEST)):
        entry = path.parent
        if any(part.startswith(".") for part in entry.relative_to(base).parts):
            continue            # an entry being written or replaced
        try:
            out.append((entry, read_manifest(entry), None))
        except (Miss, Corrupt) as exc:
            out.append((entry, None, str(exc)))
    return out


def verify(entry: Path) -> str | None:
    """None if every file of the entry matches its manifest, else what does not."""
    try:
        manifest = read_manifest(entry)
        for name, info in manifest["files"].items():
            path = entry / name
            if not path.is_file():
                return f"{path}: missing"
            sha, size = _sha256_file(path)
            if (sha, size) != (info.get("sha256"), info.get("size")):
                return f"{path}: does not match the manifest"
    except (Miss, Corrupt) as exc:
        return str(exc)
    return None
