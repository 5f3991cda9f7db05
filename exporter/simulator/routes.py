"""What every fake vendor route declares, and the helpers the vendors share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

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
