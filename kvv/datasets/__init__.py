"""Benchmark datasets: the Hugging Face dataset viewer API over httpx, local JSONL files, and a
verified cache, so a second run needs no network (docs/architecture.md §4-5, issue 7 item 2).

    from kvv import datasets
    spec = datasets.find_spec("ocrbench").override(split="test")      # or a local file: override("rows.jsonl")
    data = await datasets.aload(spec, server=config_value)            # or datasets.load(spec) without a loop
    for record in data:                                               # Record: index, fields, images
        record.fields["question"], record.answer, [i.data_url() for i in record.image_list()]

The datasets kvv knows are data: kvv/data/datasets.yaml.
"""

from .cache import cache_root
from .errors import DatasetError
from .images import Image
from .load import Dataset, aload, is_offline, known_rows, load, pull_command
from .specs import (DatasetSpec, FieldSpec, Record, builtin_specs, find_spec, is_local_path, suite_specs, suites,
                    validate_row)
from .viewer import DEFAULT_SERVER, ViewerClient, server_url

__all__ = [
    "DEFAULT_SERVER", "Dataset", "DatasetError", "DatasetSpec", "FieldSpec", "Image", "Record", "ViewerClient",
    "aload", "builtin_specs", "cache_root", "find_spec", "is_local_path", "is_offline", "known_rows", "load",
    "pull_command", "server_url", "suite_specs", "suites", "validate_row",
]
