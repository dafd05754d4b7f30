"""Loading a benchmark's dataset: a local file, the cache, or the viewer API (then cached)."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from . import cache, local
from .errors import DatasetError
from .images import Image
from .specs import DatasetSpec, Record, builtin_specs, validate_row
from .viewer import Progress, ViewerClient, check_server, server_url

OFFLINE_VARIABLES = ("KVV_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


@dataclass
class Dataset:
    """A loaded split: its records, and where they came from (`source`: file, cache or server)."""

    spec: DatasetSpec
    records: list[Record]
    source: str
    origin: str                          # the file, or the viewer API's base URL
    num_rows_total: int
    partial: bool = False                # the viewer served only part of a big dataset
    fetched_at: str | None = None
    cache_dir: Path | None = None
    features: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __getitem__(self, index: int) -> Record:
        return self.records[index]

    @property
    def images(self) -> int:
        return sum(len(r.images) for r in self.records)


def is_offline(environ: Mapping[str, str] = os.environ) -> bool:
    return any(environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_VARIABLES)


async def aload(spec: DatasetSpec, *, server: str | None = None, token: str | None = None,
                cache_dir: str | os.PathLike[str] | None = None, use_cache: bool = True,
                offline: bool | None = None, refresh: bool = False, allow_insecure_http: bool = False,
                on_progress: Progress | None = None, **client_options: Any) -> Dataset:
    """The spec's rows as Records.

    A spec with `local` reads that JSONL file (ConfigError when it is bad). Otherwise the cache
    entry for (server, id, config, split), verified; when it is missing, corrupt or `refresh`
    is set, the viewer API (`server`, else KVV_DATASETS_SERVER, else the public one; `token`,
    else HF_TOKEN), then the cache is filled. `offline` (default: KVV_OFFLINE, HF_HUB_OFFLINE or
    HF_DATASETS_OFFLINE set) never touches the network. `use_cache=False` neither reads nor
    writes the cache. `client_options` go to ViewerClient (retries, caps, concurrency...).
    DatasetError for a dataset that cannot be had; ConfigError for a bad server URL.
    """
    if spec.local is not None:
        records = local.read_rows(spec.local, spec, **{k: v for k, v in client_options.items()
                                                       if k == "max_image_bytes"})
        return Dataset(spec=spec, records=records, source="file", origin=str(spec.local),
                       num_rows_total=len(records))
    base = check_server(server_url(server), allow_insecure_http)
    offline = is_offline() if offline is None else offline
    root = cache.cache_root(cache_dir)
    if use_cache and not refresh:
        try:
            return _from_cache(spec, base, root)
        except cache.Miss:
            if offline:
                raise DatasetError(f"not in the cache ({root}) and kvv is offline; fill the cache where there "
                                   f"is network: {pull_command(spec, server)}",
                                   dataset=spec.label) from None
        except cache.Corrupt as exc:
            if offline:
                raise DatasetError(f"the cache is corrupt: {exc}; kvv is offline, so it cannot fetch it again "
                                   "(kvv datasets pull --refresh where there is network)", dataset=spec.label) from None
            if on_progress is not None:
                on_progress({"dataset": spec.label, "note": f"cache corrupt ({exc}); fetching again"})
    elif offline:
        raise DatasetError("kvv is offline, so it cannot fetch the dataset" +
                           (" again (--refresh)" if refresh else ""), dataset=spec.label)
    async with ViewerClient(base, token=token, allow_insecure_http=allow_insecure_http, **client_options) as client:
        if not use_cache:
            fetched = await client.fetch(spec, on_progress=on_progress)
            return _dataset(spec, fetched.rows, fetched.features, fetched.image_fields, "server", base,
                            fetched.num_rows_total, fetched.partial)
        try:
            staging = cache.Staging(root, base, spec)
        except OSError as exc:
            raise DatasetError(f"cannot write the dataset cache in {root} (KVV_CACHE_DIR): "
                               f"{exc.strerror or exc}", dataset=spec.label) from None
        try:
            fetched = await client.fetch(spec, store=staging.store, on_progress=on_progress)
            staging.commit(fetched)
        except OSError as exc:
            raise DatasetError(f"cannot write the dataset cache in {root} (KVV_CACHE_DIR): "
                               f"{exc.strerror or exc}", dataset=spec.label) from None
        finally:
            staging.discard()
    try:
        dataset = _from_cache(spec, base, root)
    except (cache.Miss, cache.Corrupt) as exc:       # written a moment ago: the disk is at fault
        raise DatasetError(f"the cache entry just written cannot be read back: {exc}", dataset=spec.label) from None
    dataset.source = "server"
    return dataset


def load(spec: DatasetSpec, **options: Any) -> Dataset:
    """`aload` for callers without an event loop."""
    return asyncio.run(aload(spec, **options))


def _from_cache(spec: DatasetSpec, base: str, root: Path) -> Dataset:
    manifest, rows = cache.read(root, base, spec)
    return _dataset(spec, rows, manifest.get("features") or [], manifest.get("image_fields") or [], "cache", base,
                    manifest.get("num_rows_total", manifest["num_rows"]), bool(manifest.get("partial")),
                    manifest["fetched_at"], cache.entry_dir(root, base, spec))


def _dataset(spec: DatasetSpec, rows: list[tuple[int, dict[str, Any]]], features: list[dict[str, Any]],
             image_fields: list[str], source: str, origin: str, total: int, partial: bool,
             fetched_at: str | None = None, cache_dir: Path | None = None) -> Dataset:
    records = []
    for index, row in rows:
        images = {k: v for k, v in row.items() if isinstance(v, Image)}
        records.append(validate_row(spec, row, index, images, image_fields=[*image_fields, *images]))
    return Dataset(spec=spec, records=records, source=source, origin=origin, num_rows_total=total,
                   partial=partial, fetched_at=fetched_at, cache_dir=cache_dir, features=features)


def known_rows(spec: DatasetSpec, *, server: str | None = None,
               cache_dir: str | os.PathLike[str] | None = None) -> tuple[int | None, str]:
    """(rows, where that number comes from) with no network, for `kvv plan`: a local file's
    non-blank lines, else the cache's manifest (not verified), else what upstream documents."""
    if spec.local is not None:
        try:
            return local.count_rows(spec.local), f"local file {spec.local}"
        except OSError:
            return None, f"local file {spec.local} (unreadable)"
    try:
        base = server_url(server)
        manifest = cache.read_manifest(cache.entry_dir(cache.cache_root(cache_dir), base, spec))
        return manifest["num_rows"], f"cached {manifest['fetched_at']}"
    except (cache.Miss, cache.Corrupt, ValueError):
        pass
    if spec.rows is not None:
        return spec.rows, f"as upstream documents it ({spec.rows_source})" if spec.rows_source else "documented"
    return None, "unknown until fetched"


def pull_command(spec: DatasetSpec, server: str | None = None) -> str:
    """The `kvv datasets pull` line that caches this dataset."""
    key = spec.key or ""
    builtin = builtin_specs().get(key)
    words = ["kvv datasets pull --dataset", _quoted(key if builtin else spec.id)]
    if builtin is None or spec.config != builtin.config or spec.id != builtin.id:
        words += ["--config", _quoted(spec.config)]
    if builtin is None or spec.split != builtin.split or spec.id != builtin.id:
        words += ["--split", _quoted(spec.split)]
    if builtin is not None and spec.id != builtin.id:
        words[1] = _quoted(spec.id)
    if server:
        words += ["--datasets-server", _quoted(server)]
    return " ".join(words)


def _quoted(value: str) -> str:
    return value if re.fullmatch(r"[\w./:-]+", value) else shlex.quote(value)


__all__ = ["Dataset", "aload", "is_offline", "known_rows", "load", "pull_command"]
