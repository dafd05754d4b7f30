"""The dataset layer's one error (a bad local file is a kvv.errors.ConfigError instead)."""

from __future__ import annotations

from ..errors import KvvError


class DatasetError(KvvError):
    """A dataset kvv cannot use: unreachable, refused, malformed, or a row that lacks what its
    benchmark needs. The message names the dataset, the row and the field where there is one;
    it never holds the Hugging Face token."""

    def __init__(self, message: str, *, dataset: str | None = None, row: int | None = None,
                 field: str | None = None):
        self.dataset, self.row, self.field, self.reason = dataset, row, field, message
        where = [dataset] if dataset else []
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
