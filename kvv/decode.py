"""A response body's Content-Encoding undone a bounded piece at a time.

httpx decodes each read whole: 64 KiB of gzip can become 66 MB in one step, before a size cap
sees a byte. kvv reads the raw bytes instead and decodes them here, never more than PIECE
bytes per step, so the cap holds on the decoded size while reading and memory stays
O(cap × concurrency) whatever the vendor sends.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

PIECE = 64 * 1024


class DecodeError(Exception):
    """The body does not decode as its Content-Encoding says (or names one kvv cannot read)."""


class BodyDecoder:
    def __init__(self, content_encoding: str = ""):
        names = [n.strip().lower() for n in content_encoding.split(",") if n.strip()]
        names = [n for n in names if n != "identity"]
        if len(names) > 1:
            raise DecodeError(f"Content-Encoding {content_encoding!r}: kvv decodes one encoding, not a chain")
        self.encoding = names[0] if names else ""
        self._zlib: zlib._Decompress | None      # typeshed's name for what decompressobj() returns
        if self.encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.encoding == "deflate":
            self._zlib = zlib.decompressobj()   # zlib-wrapped; raw deflate is retried on the first error
        elif self.encoding:
            raise DecodeError(f"Content-Encoding {self.encoding!r} is not one kvv asked for (gzip, deflate)")
        else:
            self._zlib = None
        self._started = False

    def feed(self, raw: bytes) -> Iterator[bytes]:
        """The decoded bytes of `raw`, in pieces of at most PIECE bytes."""
        if self._zlib is None:
            for start in range(0, len(raw), PIECE):
                yield raw[start:start + PIECE]
            return
        data = raw
        while data:
            try:
                piece = self._zlib.decompress(data, PIECE)
            except zlib.error as exc:
                if self.encoding != "deflate" or self._started:
                    raise DecodeError(f"{self.encoding} body does not decode: {exc}") from None
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)   # servers send raw deflate too
                self._started = True
                continue
            self._started = True
            data = self._zlib.unconsumed_tail
            if piece:
                yield piece
            elif self._zlib.eof:
                return

    def close(self) -> Iterator[bytes]:
        if self._zlib is not None:
            try:
                tail = self._zlib.flush()
            except zlib.error as exc:
                raise DecodeError(f"{self.encoding} body does not decode: {exc}") from None
            for start in range(0, len(tail), PIECE):
                yield tail[start:start + PIECE]
