"""Before a suite: is the endpoint usable at all, and what is it?

Two requests: `GET /models` (cheap; kvv's simulator names itself in a header there) and one
plain chat request, the baseline with no optional parameter. A cause that would make every
check fail the same way (nothing listening, DNS, TLS, a wrong key, a wrong path, an endpoint
that cannot answer a plain request) stops the run in seconds with one message, instead of
minutes of retries and a copy of the same error per item.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from . import identity
from .client import Client
from .errors import KvvError
from .exchange import Exchange

CONNECT_RETRY_S = 1.0          # one more try after a refused connection: a server still starting


class EndpointUnusable(KvvError):
    """The endpoint cannot be judged: the run stops (exit 3) with this one message."""

    def __init__(self, cause: str, message: str):
        self.cause = cause          # connection | dns | tls | timeout | auth | not_found | unavailable
        super().__init__(message)


@dataclass
class Probe:
    simulator: dict[str, str] | None = None      # kvv's simulator, as it describes itself
    models: list[str] | None = None              # ids GET /models listed, when it answered
    notes: list[str] = field(default_factory=list)   # worth saying, not worth stopping for
    requests: int = 0


async def probe(client: Client, baseline: dict[str, Any], model: str) -> Probe:
    """Raises EndpointUnusable when no check could be judged; else what was learnt."""
    found = Probe()
    listing = await client.get("/models")
    found.requests += 1
    if listing.error == "connection":
        await asyncio.sleep(CONNECT_RETRY_S)
        listing = await client.get("/models")
        found.requests += 1
    if listing.error in ("connection", "timeout"):
        raise _unreachable(client, listing)
    if listing.status in (401, 403):
        raise _auth(client, listing)
    found.simulator = identity.parse(listing.headers)
    if listing.ok and isinstance(listing.error_body, dict) and isinstance(listing.error_body.get("data"), list):
        found.models = [m["id"] for m in listing.error_body["data"]
                        if isinstance(m, dict) and isinstance(m.get("id"), str)]
        if found.models and model not in found.models:
            found.notes.append(f"GET /models does not list {model!r} (it lists {', '.join(found.models[:8])}"
                               f"{' …' if len(found.models) > 8 else ''})")
    answer = await client.chat(baseline)
    found.requests += answer.attempts
    if answer.error in ("connection", "timeout"):
        raise _unreachable(client, answer)
    if answer.status in (401, 403):
        raise _auth(client, answer)
    if answer.status == 404:
        raise EndpointUnusable("not_found", f"POST {client.url} answered HTTP 404: {_said(answer)}. "
                                            f"{_path_hint(client.base_url, model)}")
    if answer.error in ("server_error", "rate_limit"):
        raise EndpointUnusable("unavailable", f"a plain request (no optional parameter) to {client.url} failed on "
                                              f"every one of {answer.attempts} attempts ({answer.error}): "
                                              f"{answer.error_detail}")
    found.simulator = found.simulator or identity.parse(answer.headers)
    return found


def _unreachable(client: Client, ex: Exchange) -> EndpointUnusable:
    detail = ex.error_detail
    host = urlsplit(client.base_url).netloc
    if ex.error == "timeout":
        return EndpointUnusable("timeout", f"{host} did not answer in time: {detail}")
    if re.search(r"name or service not known|nodename nor servname|getaddrinfo|name resolution|no address",
                 detail, re.I):
        return EndpointUnusable("dns", f"the host name of {client.base_url} does not resolve (DNS): {detail}")
    if re.search(r"ssl|tls|certificate", detail, re.I):
        return EndpointUnusable("tls", f"TLS with {host} failed (certificate or protocol): {detail}")
    if re.search(r"refused|errno 111|connect call failed", detail, re.I):
        return EndpointUnusable("connection", f"nothing is listening at {host} (connection refused)")
    return EndpointUnusable("connection", f"cannot connect to {host}: {detail}")


def _auth(client: Client, ex: Exchange) -> EndpointUnusable:
    key = "the API key was refused" if ex.status == 401 else "the API key may not use this endpoint or model"
    return EndpointUnusable("auth", f"HTTP {ex.status} from {client.base_url}: {key} ({_said(ex)}). The key is "
                                    "read from KVV_API_KEY, KIMI_API_KEY or the variable --api-key-env names")


def _path_hint(base_url: str, model: str) -> str:
    path = urlsplit(base_url).path.rstrip("/")
    if not re.search(r"/v\d+\w*$", path):
        return f"The base URL has no version segment: did you mean {base_url.rstrip('/')}/v1?"
    return f"Check the base URL and that the endpoint serves the model {model!r}."


def _said(ex: Exchange) -> str:
    body = ex.error_body
    if isinstance(body, dict):
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        if isinstance(message, str) and message:
            return message[:200]
    return ex.body_excerpt[:200].strip() or "no message"
