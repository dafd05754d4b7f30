"""Images as the dataset holds them: bytes with their real mime type, sent as data URLs.

No decoding and no re-encoding: the bytes the dataset ships are the bytes the vendor gets. The
mime type is the one the bytes are (their magic number); a Content-Type or data-URL type that
says otherwise is corrected, and bytes that are none of PNG, JPEG, GIF or WebP are refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DatasetError

MiB = 1 << 20
MAX_IMAGE_BYTES = 20 * MiB

EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}
SUPPORTED = "PNG, JPEG, GIF or WebP"


def sniff(data: bytes) -> str | None:
    """The mime type the bytes' magic number says, if it is one kvv passes on."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def real_mime(data: bytes, declared: str | None) -> str:
    """The bytes' own type, or ValueError saying what they are not (`declared`: what the
    Content-Type or data URL claimed, for the message)."""
    mime = sniff(data)
    if mime is None:
        claim = f" (declared {declared!r})" if declared else ""
        head = data[:8].hex(" ") if data else "nothing"
        raise ValueError(f"not a {SUPPORTED} image{claim}: {len(data):,} bytes starting {head}")
    return mime


def declared_mime(content_type: str | None) -> str | None:
    """`image/png` of `image/png; charset=binary`; None for an empty header."""
    if not content_type:
        return None
    return content_type.split(";")[0].strip().lower() or None


@dataclass(frozen=True)
class Image:
    """One image cell. Its bytes are in memory (`data`) or in a file (`path`, e.g. the cache),
    read on demand and checked against `sha256` each time."""

    mime: str
    sha256: str
    size: int
    width: int | None = None
    height: int | None = None
    declared_mime: str | None = None       # what the server or file said, when it said otherwise
    path: Path | None = None
    data: bytes | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_bytes(cls, data: bytes, declared: str | None = None, *, width: int | None = None,
                   height: int | None = None, path: Path | None = None, keep: bool = True) -> Image:
        """ValueError when the bytes are not an image kvv passes on."""
        mime = real_mime(data, declared)
        return cls(mime=mime, sha256=hashlib.sha256(data).hexdigest(), size=len(data), width=width,
                   height=height, declared_mime=declared if declared and declared != mime else None,
                   path=path, data=data if keep else None)

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise DatasetError(f"image {self.path} cannot be read: {exc.strerror or exc}") from None
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise DatasetError(f"image {self.path} changed since it was loaded (sha256 mismatch); "
                               "load the dataset again")
        return data

    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.read()).decode('ascii')}"

    def describe(self) -> dict[str, object]:
        """JSON-ready, without the bytes."""
        out: dict[str, object] = {"mime": self.mime, "sha256": self.sha256, "size": self.size}
        if self.width is not None:
            out["width"], out["height"] = self.width, self.height
        if self.declared_mime:
            out["declared_mime"] = self.declared_mime
        return out


_DATA_URL = re.compile(r"data:([^,;]*)((?:;[^,;]*)*),", re.ASCII)


def is_data_url(value: str) -> bool:
    return value[:5].lower() == "data:"


def decode_data_url(value: str, max_bytes: int = MAX_IMAGE_BYTES) -> tuple[bytes, str | None]:
    """(bytes, declared mime) of a base64 data URL; ValueError for anything else."""
    match = _DATA_URL.match(value)
    if not match:
        raise ValueError("not a data URL; expected data:<mime>;base64,<data>")
    params = [p.strip().lower() for p in match.group(2).split(";") if p.strip()]
    if "base64" not in params:
        raise ValueError("a data URL without ;base64; expected data:<mime>;base64,<data>")
    payload = value[match.end():]
    if len(payload) > (max_bytes + 2) // 3 * 4 + 4:
        raise ValueError(f"the image is over {max_bytes:,} bytes")
    try:
        data = base64.b64decode(re.sub(r"\s+", "", payload), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"the data URL's base64 is broken: {exc}") from None
    return data, (match.group(1).strip().lower() or None)
