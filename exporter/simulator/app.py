"""The simulator: fleet state, fault injection, the request log and the Starlette app."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from exporter.simulator import backupify, cloudally, datto
from exporter.simulator.faults import Fault, first_match, parse_fault
from exporter.simulator.fleet import generate_fleet
from exporter.simulator.routes import VendorRoute, error, respond
from exporter.simulator.tokens import TokenStore

logger = logging.getLogger(__name__)

Shape = Literal["spec", "live", "mixed"]

# Plausible openings cut off mid-document, so it is the client's JSON parsing that fails.
MALFORMED: Final = {
    "domains": b'[{"saasCustomerId": 1001, "saasCustomerName": "Cont',
    "seats": b'{"seats": [{"remoteId": "x",',
    "applications": b'{"pagination": {"page": 1, "perPage": 100}, "items": [{"customerId": ',
}


@dataclass
class RequestRecord:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    time: float
    status: int = 0


class Simulator:
    def __init__(
        self,
        *,
        customers: int = 12,
        seats_per_customer: int = 25,
        seed: int = 1,
        shape: Shape = "mixed",
        latency_ms: float = 0,
        faults: Sequence[Fault] = (),
        public_key: str = "demo-public",
        private_key: str = "demo-private",
        budget: int = 100_000,
        client_id: str = "demo-client",
        client_secret: str = "demo-secret",
        token_ttl: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.fleet = generate_fleet(customers, seats_per_customer, seed)
        self.start = clock()
        self.backupify = backupify.generate(seed, max(3, customers // 2), self.start)
        self.cloudally = cloudally.generate(seed, max(3, customers // 2), self.start)
        self.client_id = client_id
        self.client_secret = client_secret
        self.backupify_tokens = TokenStore(token_ttl)
        self.cloudally_tokens = TokenStore(token_ttl)
        self.shape: Shape = shape
        self.latency_ms = latency_ms
        self.faults: list[Fault] = list(faults)
        self.public_key = public_key
        self.private_key = private_key
        self.budget = budget
        self.clock = clock
        self.calls: Counter[str] = Counter()
        self.requests: list[RequestRecord] = []
        self._spent = 0
        self._window = 0

    def reset(self) -> None:
        self.calls.clear()
        self.requests.clear()

    def set_faults(self, faults: Sequence[Fault]) -> None:
        self.faults = list(faults)

    def _spend(self, cost: int, now: float) -> tuple[dict[str, str], float | None]:
        """Charge the hourly budget; the headers to send, and a wait if it is exhausted."""
        window = int(now // 3600)
        if window != self._window:
            self._window, self._spent = window, 0
        resets = (window + 1) * 3600
        wait = None
        if self._spent + cost > self.budget:
            wait = resets - now
        else:
            self._spent += cost
        headers = {
            "X-API-Limit-Remaining": str(self.budget - self._spent),
            "X-API-Limit-Resets": str(resets),
            "X-API-Limit-Cost": str(cost),
        }
        return headers, wait

    def _vendor_route(self, vendor: str, route: VendorRoute) -> Callable[..., Any]:
        async def endpoint(request: Request) -> Response:
            record = RequestRecord(
                request.method,
                request.url.path,
                request.url.query,
                {k.lower(): v for k, v in request.headers.items()},
                time.monotonic(),
            )
            self.requests.append(record)
            self.calls[f"{vendor}.{route.key}"] += 1
            response = await self._answer(request, route)
            record.status = response.status_code
            return response

        return endpoint

    async def _answer(self, request: Request, route: VendorRoute) -> Response:
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        if route.auth is not None and not route.auth(request):
            return error(401, "Unauthorized")
        target = next(iter(request.path_params.values()), None)
        fault = first_match(
            self.faults, route.key, target, route.size(request) if route.size else None
        )
        # A rejected key costs nothing and reports no budget, as with real bad credentials.
        if fault is not None and fault.kind == "401":
            return error(401, "Unauthorized")
        now = self.clock()
        headers: dict[str, str] = {}
        wait = None
        if route.cost is not None:
            headers, wait = self._spend(route.cost, now)
        request.state.fault = None
        if fault is not None:
            if fault.kind in ("slow", "hang"):
                # Cancellable: uvicorn cancels it once its graceful shutdown timeout passes.
                await asyncio.sleep(fault.delay_ms / 1000)
                now = self.clock()
            elif fault.kind in ("link_cycle", "cross_origin"):
                request.state.fault = fault
            elif fault.kind == "429":
                headers["Retry-After"] = str(math.ceil(fault.retry_after))
                return JSONResponse(
                    {"code": 429, "message": "Too Many Requests"}, 429, headers=headers
                )
            elif fault.kind == "malformed":
                return Response(
                    MALFORMED.get(route.key, b'{"data": [{"id": "x",'),
                    200,
                    headers=headers,
                    media_type="application/json",
                )
            else:
                return JSONResponse(
                    {"code": int(fault.kind), "message": "simulated failure"},
                    int(fault.kind),
                    headers=headers,
                )
        if wait is not None:
            headers["Retry-After"] = str(math.ceil(wait))
            return JSONResponse(
                {"code": 429, "message": "API limit exceeded"}, 429, headers=headers
            )
        response = respond(await route.handler(request, now))
        response.headers.update(headers)
        return response

    async def _stats(self, _: Request) -> Response:
        return JSONResponse({"calls": dict(self.calls), "requests": len(self.requests)})

    async def _set_faults(self, request: Request) -> Response:
        try:
            specs = json.loads(await request.body())
            if not isinstance(specs, list) or not all(isinstance(s, str) for s in specs):
                raise ValueError("expected a JSON list of fault specs")
            faults = [parse_fault(s) for s in specs]
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        self.set_faults(faults)
        logger.info("msg=%s faults=%s", "faults set", ",".join(specs) or "none")
        return JSONResponse({"faults": specs})

    def app(self) -> Starlette:
        routes = [
            Route(r.path, self._vendor_route(vendor, r), methods=list(r.methods))
            for vendor, vendor_routes in (
                ("datto", datto.routes(self)),
                ("backupify", backupify.routes(self)),
                ("cloudally", cloudally.routes(self)),
            )
            for r in vendor_routes
        ]
        routes += [
            Route("/_sim/stats", self._stats, methods=["GET"]),
            Route("/_sim/faults", self._set_faults, methods=["PUT"]),
        ]
        return Starlette(routes=routes)
