"""The simulator: the shared world, one part per registered vendor, fault injection, the request
log, the budget and the Starlette app."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from exporter import vendors
from exporter.simulator.faults import BODY_KINDS, Fault, first_match, parse_fault
from exporter.simulator.fleet import Fleet, generate_fleet
from exporter.simulator.routes import VendorRoute, error, hostile_body, respond, rewritten
from exporter.simulator.world import Credentials, Shape, VendorSim, World

logger = logging.getLogger(__name__)

P = TypeVar("P", bound=VendorSim)


@dataclass
class RequestRecord:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    time: float
    status: int = 0


class Simulator:
    """Every registered vendor's fake API over one shared world, with faults, a request log
    and a budget."""

    def __init__(
        self,
        *,
        customers: int = 12,
        seats_per_customer: int = 25,
        seed: int = 1,
        shape: Shape = "mixed",
        latency_ms: float | Mapping[str, float] = 0,
        faults: Sequence[Fault] = (),
        public_key: str = "demo-public",
        private_key: str = "demo-private",
        budget: int = 100_000,
        budget_window_seconds: float = 3600.0,
        budget_headers: bool = True,
        client_id: str = "demo-client",
        client_secret: str = "demo-secret",
        token_ttl: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.credentials = Credentials(public_key, private_key, client_id, client_secret)
        self.world = World(
            fleet=generate_fleet(customers, seats_per_customer, seed),
            seed=seed,
            customers=customers,
            start=clock(),
            credentials=self.credentials,
            token_ttl=token_ttl,
            shape=shape,
        )
        self.parts: dict[str, VendorSim] = {v.name: v.simulator(self.world) for v in vendors.all()}
        self.latency: dict[str, float] = {"*": 0.0}
        self.set_latency(latency_ms)
        self.budget = budget
        self.clock = clock
        self.calls: Counter[str] = Counter()
        self.requests: list[RequestRecord] = []
        if not (math.isfinite(budget_window_seconds) and budget_window_seconds > 0):
            raise ValueError(f"budget window {budget_window_seconds!r}: must be > 0 seconds")
        self.budget_window_seconds = budget_window_seconds
        # False: enforce the budget with 429s but report nothing, like a vendor that does not.
        self.budget_headers = budget_headers
        # Windows run from the simulator's start, on a whole second so reset times stay whole.
        self._budget_origin = float(math.floor(self.world.start))
        # Per window (its number from the start): budget charged, and calls refused for it.
        self.budget_spent: Counter[int] = Counter()
        self.budget_rejected: Counter[int] = Counter()
        self.faults: list[Fault] = []
        self.set_faults(faults)

    @property
    def fleet(self) -> Fleet:
        return self.world.fleet

    @property
    def shape(self) -> Shape:
        return self.world.shape

    @property
    def start(self) -> float:
        return self.world.start

    def part(self, kind: type[P]) -> P:
        """The one vendor part of this type (tests reach into a vendor's state this way)."""
        found = [p for p in self.parts.values() if isinstance(p, kind)]
        if len(found) != 1:
            raise LookupError(f"{kind.__name__}: {len(found)} simulator parts of this type")
        return found[0]

    def route_keys(self) -> list[str]:
        return [r.key for part in self.parts.values() for r in part.routes()]

    def reset(self) -> None:
        self.calls.clear()
        self.requests.clear()

    def set_faults(self, faults: Sequence[Fault]) -> None:
        """Replace the faults; one naming a route no vendor serves is refused (ValueError)."""
        known = {*self.route_keys(), "*"}
        for fault in faults:
            if fault.route not in known:
                raise ValueError(
                    f"fault {fault.kind}@{fault.route}: unknown route {fault.route!r} "
                    f"(one of {', '.join(sorted(known))})"
                )
        self.faults = list(faults)

    def set_latency(self, latency_ms: float | Mapping[str, float]) -> None:
        """Delay every answer: by one figure, or per route key with `*` for the rest (0 where
        neither is given). An unknown route or a negative or non-finite figure is refused
        (ValueError) and the latency stays as it was."""
        given = latency_ms if isinstance(latency_ms, Mapping) else {"*": latency_ms}
        known = {*self.route_keys(), "*"}
        latency = {"*": 0.0}
        for route, ms in given.items():
            if route not in known:
                raise ValueError(
                    f"latency {route}={ms}: unknown route {route!r} "
                    f"(one of {', '.join(sorted(known))})"
                )
            if not (isinstance(ms, int | float) and math.isfinite(ms) and ms >= 0):
                raise ValueError(f"latency {route}={ms!r}: not a number of milliseconds >= 0")
            latency[route] = float(ms)
        self.latency = latency

    def _spend(self, cost: int, now: float) -> tuple[dict[str, str], float | None]:
        """Charge the budget window ``now`` falls in; the headers to send, and a wait if the
        window's budget is exhausted."""
        window = math.floor((now - self._budget_origin) / self.budget_window_seconds)
        resets = self._budget_origin + (window + 1) * self.budget_window_seconds
        wait = None
        if self.budget_spent[window] + cost > self.budget:
            wait = resets - now
            self.budget_rejected[window] += 1
        else:
            self.budget_spent[window] += cost
        if not self.budget_headers:
            return {}, wait
        headers = {
            "X-API-Limit-Remaining": str(self.budget - self.budget_spent[window]),
            "X-API-Limit-Resets": str(int(resets)) if resets.is_integer() else f"{resets:.3f}",
            "X-API-Limit-Cost": str(cost),
        }
        return headers, wait

    def budget_stats(self) -> dict[str, Any]:
        """The budget per window: its start (epoch seconds), what was charged and how many
        calls were refused for want of budget."""
        windows = sorted({*self.budget_spent, *self.budget_rejected})
        return {
            "limit": self.budget,
            "window_seconds": self.budget_window_seconds,
            "headers": self.budget_headers,
            "windows": [
                {
                    "start": self._budget_origin + w * self.budget_window_seconds,
                    "spent": self.budget_spent[w],
                    "rejected": self.budget_rejected[w],
                }
                for w in windows
            ],
            "rejected": self.budget_rejected.total(),
        }

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
            started = time.monotonic()
            response = await self._answer(request, route)
            record.status = response.status_code
            # The latency is the whole time to answer, as a vendor's is: the time spent building
            # the answer counts towards it, so that a bench's floor (calls x latency) holds.
            delay_ms = self.latency.get(route.key, self.latency["*"])
            remaining = delay_ms / 1000 - (time.monotonic() - started)
            if remaining > 0:
                await asyncio.sleep(remaining)
            return response

        return endpoint

    async def _answer(self, request: Request, route: VendorRoute) -> Response:
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
            elif fault.kind in BODY_KINDS:
                return hostile_body(fault, headers, request)
            elif fault.kind == "429":
                headers["Retry-After"] = str(math.ceil(fault.retry_after))
                return JSONResponse(
                    {"code": 429, "message": "Too Many Requests"}, 429, headers=headers
                )
            elif fault.kind == "malformed":
                return Response(
                    route.malformed,
                    200,
                    headers=headers,
                    media_type="application/json",
                )
            elif fault.kind != "rewrite":
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
        if fault is not None and fault.kind == "rewrite":
            response = rewritten(response, fault)
        response.headers.update(headers)
        return response

    async def _stats(self, _: Request) -> Response:
        return JSONResponse(
            {
                "calls": dict(self.calls),
                "requests": len(self.requests),
                # Every 429 answered: for an exhausted budget and from faults.
                "responses_429": sum(1 for r in self.requests if r.status == 429),
                "budget": self.budget_stats(),
            }
        )

    async def _set_faults(self, request: Request) -> Response:
        try:
            specs = json.loads(await request.body())
            if not isinstance(specs, list) or not all(isinstance(s, str) for s in specs):
                raise ValueError("expected a JSON list of fault specs")
            self.set_faults([parse_fault(s) for s in specs])
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        logger.info("msg=%s faults=%s", "faults set", ",".join(specs) or "none")
        return JSONResponse({"faults": specs})

    def app(self) -> Starlette:
        routes = [
            Route(r.path, self._vendor_route(vendor, r), methods=list(r.methods))
            for vendor, part in self.parts.items()
            for r in part.routes()
        ]
        routes += [
            Route("/_sim/stats", self._stats, methods=["GET"]),
            Route("/_sim/faults", self._set_faults, methods=["PUT"]),
        ]
        return Starlette(routes=routes)
