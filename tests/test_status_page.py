"""The status page at `/`, in a real headless Chromium (Debian's `chromium`, driven by Playwright
with `executable_path`) against the simulated fleet: it renders, lists the incident's problem
customers first, keeps hostile vendor text as text, fits a phone, and shows no secret. The
judging itself is checked without a browser, at the alert rules' boundaries."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Browser, Dialog, Page, sync_playwright

from exporter import health, statuspage
from exporter import thresholds as limits
from exporter.app import build_app
from exporter.cli import demo_config
from exporter.http import ApiStats
from exporter.model import ApplicationBackup, Customer, RestoreJob, Seat, Snapshot
from exporter.refresh import SourceState
from exporter.simulator.app import Simulator
from exporter.simulator.scenarios import make_incident
from exporter.simulator.world import Trouble
from exporter.source import Part
from tests.conftest import IN_CI, ServerThread, datto_source, exporter_for, scrape

HOSTILE_NAME = "<img src=x onerror=alert(1)>"
HOSTILE_SEAT = "<script>alert(2)</script>"
CANARY = "CANARY-9e0d2c41-status-page"
CLIENT_CANARY = "CANARY-client-5a7f-status-page"
RANK = {"failed": 4, "unreadable": 3, "stale": 2, "unprotected": 1}
HOUR = 3600.0


def chromium() -> str:
    """Debian's chromium. Missing: a skip on a laptop, a failure under CI=true."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "chromium is not installed (the Debian package chromium; `make tools`)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable)
        yield launched
        launched.close()


@dataclass
class Stack:
    sim: Simulator
    sim_url: str
    url: str
    troubles: tuple[Trouble, ...]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """The demo fleet in the incident scenario, with hostile text in the shared fleet's first
    customer, served by an exporter whose credentials are canaries."""
    sim = Simulator(private_key=CANARY, client_secret=CLIENT_CANARY)
    sim.fleet.customers[0].name = HOSTILE_NAME
    for number, seat in enumerate(sim.fleet.customers[0].seats):
        seat.name = f"{HOSTILE_SEAT}{number}"
    incident = make_incident(sim)
    with ServerThread(sim.app()) as sim_server:
        config = demo_config(sim_server.url, sim)
        with ServerThread(build_app(config, warm_up=True)) as exporter:
            deadline = time.monotonic() + 30
            while httpx.get(exporter.url + "/-/ready", timeout=5).status_code != 200:
                assert time.monotonic() < deadline, "the exporter never became ready"
                time.sleep(0.05)
            yield Stack(sim, sim_server.url, exporter.url, incident.troubles)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    yield opened
    context.close()


def customer_rows(page: Page) -> list[dict[str, str]]:
    found: list[dict[str, str]] = page.locator("#t-customers tbody tr").evaluate_all(
        """rows => rows.map(r => ({
            source: r.dataset.source,
            customer: r.dataset.customer,
            name: r.querySelector("th").innerText,
            state: r.querySelector("td .s").innerText,
            text: r.innerText,
        }))"""
    )
    return found


def test_the_page_renders_every_part(stack: Stack, page: Page) -> None:
    response = page.goto(stack.url + "/")
    assert response is not None
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "SaaS backup status"
    headings = page.locator("h2").all_inner_texts()
    assert headings == ["Sources", "Customers", "Running backups", "Restores"]
    refresh = page.locator('meta[http-equiv="refresh"]')
    assert refresh.get_attribute("content") == str(statuspage.REFRESH_SECONDS)
    # Every header cell says what it heads, and every table has a name.
    assert page.locator("th:not([scope])").count() == 0
    assert page.locator("table:not([aria-label])").count() == 0
    sources = page.locator("#t-sources tbody tr")
    assert sources.count() == len(stack.sim.parts)
    assert set(sources.locator("td:nth-of-type(2)").all_inner_texts()) == {"up"}
    # The incident's backup running too long and its failed restore lead their tables.
    kinds = {t.kind: t for t in stack.troubles}
    first_run = page.locator("#t-running tbody tr").first.inner_text()
    assert kinds["long_backup"].customer_id in first_run
    assert "too long" in first_run
    first_restore = page.locator("#t-restores tbody tr").first.inner_text()
    assert kinds["failed_restore"].item_id in first_restore
    assert "failed" in first_restore
    # /metrics is one click away, and serves the same fleet.
    page.get_by_role("link", name="/metrics").click()
    assert page.url == stack.url + "/metrics"
    assert "saas_backup_up" in page.content()


def test_the_problem_customers_come_first(stack: Stack, page: Page) -> None:
    page.goto(stack.url + "/")
    rows = customer_rows(page)
    troubled = {t.customer_id for t in stack.troubles}
    assert len(troubled) == len(stack.troubles) == 3
    first = rows[: len(troubled)]
    assert {r["customer"] for r in first} == troubled, rows[:5]
    # A failed restore outranks stale seats and a backup running too long.
    failed = next(t for t in stack.troubles if t.kind == "failed_restore")
    assert (first[0]["customer"], first[0]["state"]) == (failed.customer_id, "failed")
    assert [r["state"] for r in first[1:]] == ["stale", "stale"]
    # Worst first all the way down, and the rest (healed) need no attention.
    ranks = [RANK[r["state"]] for r in rows]
    assert ranks == sorted(ranks, reverse=True)
    assert all(r["state"] == "unprotected" for r in rows[len(troubled) :])
    verdict = page.locator(".verdict").inner_text()
    assert verdict == f"{len(troubled)} customers need attention"
    assert page.title().startswith(verdict)
    stale = next(t for t in stack.troubles if t.kind == "stale_seats")
    stale_seats = next(r for r in first if r["customer"] == stale.customer_id)
    assert "seat" in stale_seats["text"]
    assert "critical" in stale_seats["text"], "3 days and 2 hours is past the critical 72 h"


def test_hostile_vendor_text_stays_text(stack: Stack, page: Page) -> None:
    dialogs: list[str] = []

    def opened(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", opened)
    page.goto(stack.url + "/")
    page.wait_for_load_state("load")
    names = [r["name"] for r in customer_rows(page)]
    assert any(name.startswith(HOSTILE_NAME) for name in names), names
    assert HOSTILE_SEAT in page.locator("#t-customers").inner_text()
    assert page.locator("img, script, [onerror]").count() == 0
    assert dialogs == []
    raw = httpx.get(stack.url + "/", timeout=10).text
    assert HOSTILE_NAME not in raw
    assert html_escaped(HOSTILE_NAME) in raw


def html_escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_it_fits_a_phone(stack: Stack, browser: Browser) -> None:
    context = browser.new_context(
        viewport={"width": 375, "height": 812}, device_scale_factor=2, is_mobile=True
    )
    try:
        phone = context.new_page()
        phone.goto(stack.url + "/")
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 375
        sticking_out = phone.evaluate(
            """() => [...document.querySelectorAll("body *")]
                .filter(e => !e.closest("thead") && e.getBoundingClientRect().right > 375.5)
                .map(e => e.outerHTML.slice(0, 80))"""
        )
        assert sticking_out == []
        # Rows stack: each cell on a line of its own, led by its column's name.
        cell = phone.locator("#t-customers tbody tr").first.locator("td").first
        assert cell.evaluate("e => getComputedStyle(e).display") == "block"
        label = cell.evaluate("e => getComputedStyle(e, '::before').content")
        assert label == '"State: "'
        size = phone.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
        assert size >= 14
    finally:
        context.close()


def test_refreshing_can_be_stopped(stack: Stack, page: Page) -> None:
    page.goto(stack.url + "/")
    page.get_by_role("link", name="stop").click()
    assert page.url.endswith("/?refresh=off")
    assert page.locator('meta[http-equiv="refresh"]').count() == 0
    page.get_by_role("link", name="reload every minute").click()
    assert page.locator('meta[http-equiv="refresh"]').count() == 1


def test_no_secret_on_the_page(stack: Stack, page: Page) -> None:
    """Neither the working credentials nor a wrong key, whose refusal the page shows."""
    wrong = datto_source(stack.sim_url, name="wrong", private_key=CANARY + "-wrong")
    with ServerThread(exporter_for(wrong)) as refused:
        scrape(refused)
        page.goto(refused.url + "/")
        shown = page.content() + page.locator("body").inner_text()
    assert "HTTP 401" in shown
    assert "down" in page.locator("#t-sources").inner_text()
    page.goto(stack.url + "/")
    shown += page.content() + httpx.get(stack.url + "/", timeout=10).text
    for secret in (CANARY, CLIENT_CANARY, CANARY.lower(), "demo-password"):
        assert secret not in shown


# The judging, without a browser.

NOW = 1_800_000_000.0


def state(
    *parts: Part,
    name: str = "src",
    up: bool = True,
    refreshed: bool = True,
    error: str | None = None,
) -> SourceState:
    by_id = {p.customer_id: p for p in parts}
    return SourceState(
        name,
        "vendor",
        ApiStats(),
        parts=by_id,
        listed=True,
        up=up,
        refreshed=refreshed,
        error=error,
    )


def part(
    customer_id: str,
    *,
    error: str | None = None,
    seats: tuple[Seat, ...] = (),
    applications: tuple[ApplicationBackup, ...] = (),
    restore_jobs: tuple[RestoreJob, ...] = (),
) -> Part:
    customer = Customer(customer_id, f"Customer {customer_id}", "example.com", "m365", "active")
    snap = Snapshot((customer,), seats, applications, restore_jobs=restore_jobs)
    return Part(customer_id, snap, oldest=NOW - 60, due=NOW + 60, error=error)


def seat(customer_id: str, hours: float | None, license_state: str = "licensed") -> Seat:
    last = None if hours is None else NOW - hours * HOUR
    return Seat(customer_id, f"s{hours}", "Ada", "user", license_state, last, True)


@pytest.mark.parametrize(
    ("hours", "level"),
    [
        (limits.SEAT_STALE_HOURS, health.Level.OK),
        (limits.SEAT_STALE_HOURS + 0.01, health.Level.STALE),
        (None, health.Level.STALE),
    ],
)
def test_a_seat_is_stale_where_the_alert_says(hours: float | None, level: health.Level) -> None:
    found = health.customers([state(part("c1", seats=(seat("c1", hours),)))], NOW)
    assert found[0].level == level


def test_the_order_and_what_counts() -> None:
    app = ApplicationBackup("c2", "Mail", NOW - HOUR, "failed")
    old_restore = RestoreJob("j1", "c3", "restore", "failed", NOW - 50 * HOUR, NOW - 49 * HOUR)
    paused = ApplicationBackup("c4", "Drive", NOW - 999 * HOUR, "success", enabled=False)
    states = [
        state(
            part("c1", seats=(seat("c1", 80), seat("c1", 1, "unlicensed"))),
            part("c2", applications=(app,)),
            part("c3", restore_jobs=(old_restore,)),
            part("c4", applications=(paused,)),
            part("c5", error="HTTP 500"),
        )
    ]
    found = health.customers(states, NOW)
    assert [(c.customer_id, c.level.word) for c in found] == [
        ("c2", "failed"),
        ("c5", "unreadable"),
        ("c1", "stale"),
        ("c3", "ok"),
        ("c4", "ok"),
    ]
    assert found[2].counts(health.Level.STALE) == [("seat", 1)]
    assert found[2].counts(health.Level.UNPROTECTED) == [("seat", 1)]
    assert found[2].worst is not None
    assert found[2].worst.critical
    assert health.restores(states, NOW) == [], "a failure older than the window is not recent"


def test_the_page_without_a_browser() -> None:
    hostile = part("c1\ud800", error="<b>bad</b>", seats=(seat("c1", 30),))
    waiting = state(name="late", refreshed=False, up=False)
    down = state(hostile, name="down", up=False, error="HTTP 401 <i>")
    page = statuspage.render([down, waiting], NOW)
    assert "<b>" not in page
    assert "<i>" not in page
    assert "&lt;b&gt;bad&lt;/b&gt;" in page
    assert "\ufffd" in page, "a lone surrogate becomes U+FFFD, not an encoding error"
    assert re.search(r'<span class="s down">down</span>', page)
    assert re.search(r'<span class="s pending">pending</span>', page)
    assert "1 unreadable" in page
    assert '<meta http-equiv="refresh" content="60">' in page
    assert "refresh" not in statuspage.render([down], NOW, refresh=False).split("<title>")[0]
    assert "Waiting for the first crawl" in statuspage.render([waiting], NOW)
