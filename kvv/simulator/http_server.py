"""The simulated vendor's HTTP plumbing (docs/architecture.md §6): stdlib HTTP on loopback.

The handler reads the body, hands the request to the simulator (server.py) and writes out the
reply it decided on (wire.py), announcing which simulator answered.
"""

from __future__ import annotations

import json
from typing import Protocol

from ..identity import HEADER as IDENTITY_HEADER, header_value
from .loopback import LoopbackServer, TrackedHandler
from .wire import JsonReply, StreamReply


class Answering(Protocol):
    """What the handler needs of the simulator (server.Simulator)."""

    @property
    def identity(self) -> dict[str, str]: ...

    def handle(self, method: str, path: str, authorization: str | None, raw: bytes) -> JsonReply | StreamReply: ...


class HTTPServer(LoopbackServer):
    def __init__(self, address: tuple[str, int], simulator: Answering):
        self.simulator = simulator
        super().__init__(address, Handler)


class Handler(TrackedHandler):
    server: HTTPServer

    def do_GET(self) -> None:
        self._respond()

    def do_POST(self) -> None:
        self._respond()

    def _respond(self) -> None:
        reply = self.server.simulator.handle(self.command, self.path, self.headers.get("Authorization"),
                                             self._read_body())
        if isinstance(reply, StreamReply):
            self._send_stream(reply)
        else:
            self._send_json(reply)

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length", 0))
        except ValueError:
            length = -1
        if length < 0 or "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True    # the body's end is unknown, so the connection is unusable
            return b""
        return self.rfile.read(length)

    def _identify(self) -> None:
        # Says which simulator this is, so kvv picks the built-in references made for it.
        self.send_header(IDENTITY_HEADER, header_value(self.server.simulator.identity))

    def _send_json(self, reply: JsonReply) -> None:
        data = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self._identify()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, reply: StreamReply) -> None:
        self.send_response(reply.status)
        self._identify()
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in reply.events:
            data = event.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")
