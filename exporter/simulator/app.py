"""The simulator: fleet state, fault injection, the request log and the Starlette app."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from exporter.simulator import datto
from exporter.simulator.faults import Fault, first_match, parse_fault
from exporter.simulator.fleet import SimCustomer, generate_fleet

logger = logging.getLogger(__name__)

Shape = Literal["spec", "live", "mixed"]
Handler = Callable[[Request, Any, int, float], Awaitable[Any]]


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.fleet = generate_fleet(customers, seats_per_customer, seed)
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

    def _authorized(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return secrets.compare_digest(user, self.public_key) and secrets.compare_digest(
            password, self.private_key
        )

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

    def _vendor_route(self, key: str, vendor: str, handler: Handler) -> Callable[..., Any]:
        async def endpoint(request: Request) -> Response:
            record = RequestRecord(
                request.method,
                request.url.path,
                request.url.query,
                {k.lower(): v for k, v in request.headers.items()},
                time.monotonic(),
            )
            self.requests.append(record)
            self.calls[f"{vendor}.{key}"] += 1
            response = await self._answer(request, key, handler)
            record.status = response.status_code
            return response

        return endpoint

    async def _answer(self, request: Request, key: str, handler: Handler) -> Response:
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        if not self._authorized(request):
            return datto.error(401, "Unauthorized")
        customer: SimCustomer | None = None
        position = -1
        customer_id = request.path_params.get("customer_id")
        if customer_id is not None:
            customer = self.fleet.customer(customer_id)
            if customer is None:
                return datto.error(404, "Customer not found")
            position = self.fleet.customers.index(customer)
        fault = first_match(
            self.faults, key, customer_id, len(customer.seats) if customer else None
        )
        now = self.clock()
        headers, wait = self._spend(datto.COSTS[key], now)
        if fault is not None:
            if fault.kind in ("slow", "hang"):
                await asyncio.sleep(fault.delay_ms / 1000)
            elif fault.kind == "401":
                return datto.error(401, "Unauthorized")
            elif fault.kind == "429":
                headers["Retry-After"] = str(math.ceil(fault.retry_after))
                return JSONResponse(
                    {"code": 429, "message": "Too Many Requests"}, 429, headers=headers
                )
            elif fault.kind == "malformed":
                return Response(
                    b'{"seats": [{"remoteId": "x",',
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
        response = datto.respond(await handler(request, customer, position, now))
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
            Route(path, self._vendor_route(key, "datto", handler), methods=["GET"])
            for path, key, handler in datto.routes(self)
        ]
        routes += [
            Route("/_sim/stats", self._stats, methods=["GET"]),
            Route("/_sim/faults", self._set_faults, methods=["PUT"]),
        ]
        return Starlette(routes=routes)
