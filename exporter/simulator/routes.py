"""What every fake vendor route declares, and the helpers the vendors share."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from exporter.simulator.faults import Fault

CHUNK: Final = 64 * 1024

Handler = Callable[[Request, float], Awaitable[Any]]


@dataclass(frozen=True)
class VendorRoute:
    path: str
    key: str  # what a fault's ROUTE names
    handler: Handler
    # None: no auth (a token endpoint). Otherwise: is this request allowed?
    auth: Callable[[Request], bool] | None
    # Datto's weighted hourly budget: the cost of one call, or None where the vendor has none.
    cost: int | None = None
    # For `min_seats` faults: how large the addressed customer is.
    size: Callable[[Request], int | None] | None = None
    methods: tuple[str, ...] = field(default=("GET",))
    # What a `malformed` fault answers: a plausible opening cut off mid-document, so that it
    # is the client's JSON parsing that fails.
    malformed: bytes = b'{"data": [{"id": "x",'


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"code": status, "message": message}, status_code=status)


def respond(body: Any) -> Response:
    return body if isinstance(body, Response) else JSONResponse(body)


def page_links(request: Request, page: int, pages: int, *, next_url: str | None = None) -> str:
    """An RFC 8288 Link header for page-numbered lists; ``next_url`` overrides rel="next"."""

    def url(number: int) -> str:
        query = dict(request.query_params)
        query["page"] = str(number)
        return f"{str(request.base_url).rstrip('/')}{request.url.path}?{urlencode(query)}"

    links = [f'<{url(1)}>; rel="first"', f'<{url(pages)}>; rel="last"']
    if page > 1:
        links.append(f'<{url(page - 1)}>; rel="prev"')
    if next_url is not None:
        links.append(f'<{next_url}>; rel="next"')
    elif page < pages:
        links.append(f'<{url(page + 1)}>; rel="next"')
    return ", ".join(links)


def hostile_body(fault: Fault, headers: dict[str, str], request: Request) -> Response:
    """The whole answer of a ``huge``, ``endless``, ``trickle`` or ``deep_json`` fault. A
    streamed one ends when the client goes: the server would take the rest in vain."""
    if fault.kind == "deep_json":
        return Response(b"[" * fault.depth + b"]" * fault.depth, 200, headers, "application/json")
    if fault.kind == "trickle":
        body = _trickle(fault, request)
    else:
        body = _array(fault, None if fault.kind == "endless" else fault.size, request)
    if fault.kind == "huge":
        headers = {**headers, "Content-Length": str(max(fault.size, 2))}
    return StreamingResponse(body, 200, headers, "application/json")


async def _array(fault: Fault, size: int | None, request: Request) -> AsyncIterator[bytes]:
    """An empty JSON array padded to ``size`` bytes (at least 2), or ``[0,0,...`` without end."""
    yield b"["
    fault.sent += 1
    left = None if size is None else max(size, 2) - 2
    while (left is None or left > 0) and not await request.is_disconnected():
        chunk = b"0," * (CHUNK // 2) if left is None else b" " * min(left, CHUNK)
        if left is not None:
            left -= len(chunk)
        yield chunk
        fault.sent += len(chunk)
    yield b"]"
    fault.sent += 1


async def _trickle(fault: Fault, request: Request) -> AsyncIterator[bytes]:
    """An empty array padded with ``size`` spaces, one every ``delay_ms``: each read brings
    a byte, the whole never comes in time."""
    yield b"["
    for _ in range(max(fault.size - 2, 0)):
        await asyncio.sleep(fault.delay_ms / 1000)
        if await request.is_disconnected():
            return
        yield b" "
        fault.sent += 1
    yield b"]"


def rewritten(response: Response, fault: Fault) -> Response:
    """The route's JSON answer passed through the fault's edit and sent as JSON may be: lone
    surrogates escaped, NaN as the bare word. Any other answer passes unchanged."""
    media = response.headers.get("content-type", "")
    if fault.edit is None or not media.startswith("application/json") or not response.body:
        return response
    body = fault.edit(json.loads(bytes(response.body)))
    headers = {
        k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")
    }
    content = json.dumps(body, ensure_ascii=True, allow_nan=True).encode()
    return Response(content, response.status_code, headers, "application/json")
