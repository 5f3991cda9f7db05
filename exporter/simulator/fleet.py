"""A deterministic, seeded MSP fleet. Times are ages in seconds before "now", so the fleet looks
equally realistic whenever it is served."""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass, field
from typing import Final

HOUR: Final = 3600.0
DAY: Final = 86400.0

_FIRST: Final = (
    "Contoso",
    "Fabrikam",
    "Northwind",
    "Tailspin",
    "Adatum",
    "Litware",
    "Proseware",
    "Wingtip",
    "Woodgrove",
    "Alpine",
    "Coho",
    "Lucerne",
    "Margie's",
    "Relecloud",
    "Trey",
    "Blue Yonder",
    "Graphic",
    "Humongous",
    "Southridge",
    "Wide World",
)
_SECOND: Final = (
    "Dental",
    "Law",
    "Accounting",
    "Schools",
    "Logistics",
    "Clinic",
    "Builders",
    "Realty",
    "Insurance",
    "Foods",
    "Travel",
    "Studios",
    "Motors",
    "Pharmacy",
    "Partners",
    "Labs",
)
_PEOPLE: Final = (
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Edsger",
    "Barbara",
    "Ken",
    "Dennis",
    "Frances",
    "John",
    "Radia",
    "Donald",
    "Katherine",
    "Tim",
    "Hedy",
    "Claude",
    "Sophie",
    "Niklaus",
    "Anita",
)
_SURNAMES: Final = (
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Dijkstra",
    "Liskov",
    "Thompson",
    "Ritchie",
    "Allen",
    "Backus",
    "Perlman",
    "Knuth",
    "Johnson",
    "Berners-Lee",
    "Lamarr",
    "Shannon",
    "Wilson",
    "Wirth",
    "Borg",
)
OFFICE_APPS: Final = ("Office365Exchange", "OneDrive", "SharePoint", "Teams")
GOOGLE_APPS: Final = ("Gmail", "GoogleDrive", "GoogleCalendar", "GoogleContacts")


@dataclass
class SimSeat:
    remote_id: str
    name: str
    main_id: str
    seat_type: str
    state: str  # Datto seatState: Active, Paused, Archived, Unprotected
    backup_age: float | None  # None: never backed up
    added_age: float


@dataclass
class SimHistory:
    start_age: float
    end_age: float | None
    status: str
    active: int
    with_backup: int
    perfect: int
    total: int


@dataclass
class SimApplication:
    app_type: str
    suite_type: str
    history: list[SimHistory]
    # Services found but not yet taken into backup.
    uningested: int = 0
    # A new tenant: too little history for the vendor to judge.
    new: bool = False


@dataclass
class SimCustomer:
    id: int
    name: str
    domain: str
    organization_id: int
    organization_name: str
    product: str  # Office365 or GoogleApps
    external_subscription_id: str
    retention_type: str
    status: str
    seats: list[SimSeat] = field(default_factory=list)
    applications: list[SimApplication] = field(default_factory=list)

    @property
    def active_seats(self) -> int:
        return sum(1 for s in self.seats if s.state == "Active")


@dataclass
class Fleet:
    customers: list[SimCustomer]

    def customer(self, customer_id: str) -> SimCustomer | None:
        return next((c for c in self.customers if str(c.id) == customer_id), None)


_SHARED_LABELS: Final = (
    "Reception",
    "Sales",
    "Support",
    "Accounts",
    "Info",
    "Bookings",
    "Projects",
    "Marketing",
    "Operations",
    "Finance",
    "Careers",
    "Front Desk",
)
_TYPE_SUFFIX: Final = {
    "SharedMailbox": "",
    "Site": " Site",
    "TeamSite": " Team Site",
    "Team": " Team",
    "SharedDrive": " Drive",
}


def _unique(name: str, used: set[str], separator: str = "") -> str:
    """Two seats of one customer never share a mailbox: the second Ada Lovelace gets a 2."""
    candidate, number = name, 1
    while candidate in used:
        number += 1
        candidate = f"{name}{separator}{number}"
    used.add(candidate)
    return candidate


def _remote_id(bits: int, customer_id: int, seat_index: int) -> str:
    # Hashed rather than drawn from the RNG, so the rest of a seed's fleet stays as it was.
    digest = hashlib.blake2b(f"{bits}:{customer_id}:{seat_index}".encode(), digest_size=16)
    return str(uuid.UUID(bytes=digest.digest(), version=4))


def _seat_type(rng: random.Random, product: str) -> str:
    roll = rng.random()
    if roll < 0.78:
        return "User"
    if roll < 0.88:
        return "SharedMailbox" if product == "Office365" else "SharedDrive"
    return rng.choice(("Site", "TeamSite", "Team")) if product == "Office365" else "SharedDrive"


def _seat_state_and_age(rng: random.Random) -> tuple[str, float | None]:
    roll = rng.random()
    if roll < 0.05:
        return "Paused", rng.uniform(3 * DAY, 40 * DAY)
    if roll < 0.10:
        return "Unprotected", None
    if roll < 0.13:
        return "Archived", rng.uniform(30 * DAY, 200 * DAY)
    if roll < 0.19:
        return "Active", rng.uniform(2 * DAY, 6 * DAY)
    if roll < 0.22:
        return "Active", None
    return "Active", rng.uniform(0.5 * HOUR, 10 * HOUR)


def _history(
    rng: random.Random, customer: SimCustomer, newest: str, lag: float
) -> list[SimHistory]:
    active = customer.active_seats
    entries = []
    for day in range(10):
        start = lag + day * DAY + rng.uniform(1 * HOUR, 3 * HOUR)
        status = newest if day == 0 else ("Success" if rng.random() < 0.9 else "Partial")
        with_backup = active if status == "Success" else max(active - rng.randint(1, 3), 0)
        if status == "Failed":
            with_backup = 0
        perfect = with_backup if status == "Success" else max(with_backup - 1, 0)
        entries.append(
            SimHistory(
                start_age=start,
                end_age=start - rng.uniform(0.2 * HOUR, 0.9 * HOUR),
                status=status,
                active=active,
                with_backup=with_backup,
                perfect=perfect,
                total=len(customer.seats),
            )
        )
    return entries


def generate_fleet(customers: int, seats_per_customer: int, seed: int) -> Fleet:
    rng = random.Random(seed)
    fleet: list[SimCustomer] = []
    used_names: set[str] = set()
    for index in range(customers):
        name = f"{rng.choice(_FIRST)} {rng.choice(_SECOND)}"
        while name in used_names:
            name = f"{rng.choice(_FIRST)} {rng.choice(_SECOND)} {len(used_names)}"
        used_names.add(name)
        slug = "".join(ch for ch in name.lower() if ch.isalnum())
        product = "Office365" if rng.random() < 0.75 else "GoogleApps"
        customer = SimCustomer(
            id=1001 + index,
            name=name,
            domain=f"{slug}.onmicrosoft.com" if product == "Office365" else f"{slug}.com",
            organization_id=500 + index,
            organization_name=f"{name} LLC",
            product=product,
            external_subscription_id=f"Classic:{product}:{rng.randint(100000, 999999)}",
            retention_type=rng.choice(("INFINITE", "TIME_BASED")),
            status="inactive" if customers >= 2 and index == customers - 1 else "active",
        )
        count = max(1, round(seats_per_customer * rng.uniform(0.3, 2.0)))
        if index == 0 and seats_per_customer >= 20:
            count = max(count, 45)  # a customer large enough to draw Datto's /seats 504
        locals_used: set[str] = set()
        shared_used: set[str] = set()
        for seat_index in range(count):
            state, age = _seat_state_and_age(rng)
            person = f"{rng.choice(_PEOPLE)} {rng.choice(_SURNAMES)}"
            seat_type = _seat_type(rng, product)
            if seat_type != "User":
                label = _SHARED_LABELS[seat_index % len(_SHARED_LABELS)]
                person = _unique(f"{label}{_TYPE_SUFFIX[seat_type]}", shared_used, " ")
            local = _unique(person.lower().replace(" ", ".").replace("'", ""), locals_used)
            customer.seats.append(
                SimSeat(
                    remote_id=_remote_id(rng.getrandbits(64), customer.id, seat_index),
                    name=person,
                    main_id=f"{local}@{customer.domain}",
                    seat_type=seat_type,
                    state=state,
                    backup_age=age,
                    added_age=rng.uniform(20 * DAY, 900 * DAY),
                )
            )
        fleet.append(customer)
    _ensure_mix(fleet)
    _add_applications(rng, fleet)
    return Fleet(fleet)


def _category(seat: SimSeat) -> str:
    if seat.state != "Active":
        return seat.state
    if seat.backup_age is None:
        return "never"
    return "stale" if seat.backup_age > DAY else "fresh"


_FORCED: Final[dict[str, tuple[str, float | None]]] = {
    "stale": ("Active", 3 * DAY),
    "never": ("Active", None),
    "Paused": ("Paused", 10 * DAY),
    "Unprotected": ("Unprotected", None),
    "Archived": ("Archived", 90 * DAY),
}


def _ensure_mix(customers: list[SimCustomer]) -> None:
    """Small fleets may miss a category by chance; turn fresh seats into the missing ones."""
    # The inactive customer (last) is left alone so the others carry every category.
    seats = [s for c in (customers[:-1] or customers) for s in c.seats]
    present = {_category(s) for s in seats}
    fresh = [s for s in seats if _category(s) == "fresh"]
    for category, (state, age) in _FORCED.items():
        if category not in present and len(fresh) > 1:
            seat = fresh.pop()
            seat.state, seat.backup_age = state, age


def _add_applications(rng: random.Random, customers: list[SimCustomer]) -> None:
    for index, customer in enumerate(customers):
        apps = OFFICE_APPS if customer.product == "Office365" else GOOGLE_APPS
        lag = 5 * DAY if customer.status != "active" else 0.0
        for app_index, app_type in enumerate(apps):
            newest = "Success"
            if index == 1 % max(len(customers), 1) and app_index == 0:
                newest = "Failed"
            elif index == 2 % max(len(customers), 1) and app_index == 1:
                newest = "Partial"
            app = SimApplication(app_type, customer.product, _history(rng, customer, newest, lag))
            if newest == "Failed":
                # Never all backed up within the history: the vendor can only say "over N days".
                for entry in app.history[1:]:
                    entry.with_backup = min(entry.with_backup, max(entry.active - 1, 0))
                    entry.perfect = min(entry.perfect, entry.with_backup)
            if index == 3 % max(len(customers), 1) and app_index == 2:
                app.uningested = 2
            app.new = index == 4 % max(len(customers), 1) and len(customers) > 4
            customer.applications.append(app)
