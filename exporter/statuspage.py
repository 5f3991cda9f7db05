"""The status page at ``/``: backup health for people without Grafana, as one server-rendered
HTML document from the same source states as /metrics. A pure function of the states and the
time; ``exporter.health`` judges, this module only renders.

Markup is built with ``tag``, which escapes every text and attribute value it is given unless
it is already ``Html``: a vendor string can only ever become text. The page holds no script.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Final

from exporter import __version__
from exporter import health as h
from exporter import thresholds as limits
from exporter.health import Activity, CustomerHealth, Level
from exporter.model import valid_text
from exporter.refresh import SourceState

REFRESH_SECONDS: Final = 60
# Rows per table beyond which the page says how many more there are; /metrics has them all.
MAX_ROWS: Final = 200

CSS: Final = """
:root{color-scheme:light dark;--fg:#1b1b1b;--bg:#fff;--mut:#555;--line:#d4d4d4;
--bad:#9d0010;--badbg:#fde8ea;--warn:#6e4300;--warnbg:#fff0cf;--info:#17457f;--infobg:#e5eeff;
--ok:#1a642b;--okbg:#e2f3e5}
@media(prefers-color-scheme:dark){:root{--fg:#ececec;--bg:#151515;--mut:#b4b4b4;--line:#3d3d3d;
--bad:#ffb4ba;--badbg:#4b1118;--warn:#ffd38a;--warnbg:#3d2b00;--info:#a9c7ff;--infobg:#122a4b;
--ok:#a5e2b1;--okbg:#113419}}
body{font:15px/1.45 system-ui,sans-serif;color:var(--fg);background:var(--bg);margin:0 auto;
max-width:72rem;padding:1rem}
h1{font-size:1.45rem;margin:0}h2{font-size:1.15rem;margin:1.8rem 0 .4rem}
p{margin:.4rem 0}a{color:inherit}
table{border-collapse:collapse;width:100%}
th,td{padding:.35rem .5rem;border-bottom:1px solid var(--line);text-align:left;
vertical-align:top;overflow-wrap:anywhere}
thead th{font-size:.85em;color:var(--mut);overflow-wrap:normal}
th[scope=row]{font-weight:600}
small,.mut{color:var(--mut);font-weight:400}
.s{display:inline-block;padding:0 .35em;border-radius:.25em;font-weight:600;
white-space:nowrap}
.failed,.unreadable,.down,.critical{color:var(--bad);background:var(--badbg)}
.stale,.stuck,.too-long{color:var(--warn);background:var(--warnbg)}
.unprotected,.crawling,.pending{color:var(--info);background:var(--infobg)}
.ok{color:var(--ok);background:var(--okbg)}
.verdict{font-size:1.15rem;font-weight:600;padding:.45rem .7rem;border-radius:.3rem;
margin:.6rem 0 .3rem}
"""
# Narrow screens: each row a block, each cell a line led by its column's name (generated per
# table below, so the cells need no attributes).
PHONE: Final = """
body{font-size:14px;padding:.6rem}
thead{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%)}
tr{display:block;border-bottom:1px solid var(--line);padding:.4rem 0}
th,td{display:block;border:0;padding:.05rem 0}
td.none{display:none}
td::before{color:var(--mut);font-size:.85em}
"""

SOURCE_COLUMNS: Final = (
    "Source",
    "Vendor",
    "State",
    "Data age",
    "Customers",
    "Last success",
    "Last error",
)
PROBLEM_COLUMNS: Final = ("Customer", "State", "Failed", "Stale", "Unprotected", "Worst problem")
RUNNING_COLUMNS: Final = ("Customer", "Backup", "Status", "Running for", "Progress")
RESTORE_COLUMNS: Final = ("Customer", "Job", "Status", "Started", "Ended", "Records")
TABLES: Final = {
    "t-sources": SOURCE_COLUMNS,
    "t-customers": PROBLEM_COLUMNS,
    "t-running": RUNNING_COLUMNS,
    "t-restores": RESTORE_COLUMNS,
}


def style() -> str:
    labels = "".join(
        f'#{table_id} td:nth-of-type({i})::before{{content:"{column}: "}}\n'
        for table_id, columns in TABLES.items()
        for i, column in enumerate(columns[1:], 1)
    )
    return f"{CSS}@media(max-width:40rem){{{PHONE}{labels}}}\n"


STYLE: Final = style()


class Html(str):
    """Markup: text already escaped, or built by ``tag``."""

    __slots__ = ()


def esc(value: object) -> Html:
    if isinstance(value, Html):
        return value
    return Html(html.escape(valid_text(str(value)), quote=True))


def join(parts: Iterable[object], separator: str = "") -> Html:
    return Html(esc(separator).join(esc(p) for p in parts))


def tag(name: str, *children: object, **attrs: str | None) -> Html:
    """``<name attrs>children</name>``; ``class_`` is ``class``, ``aria_x`` is ``aria-x``."""
    attributes = "".join(
        f' {key.rstrip("_").replace("_", "-")}="{esc(value)}"'
        for key, value in attrs.items()
        if value is not None
    )
    return Html(f"<{name}{attributes}>{join(children)}</{name}>")


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def badge(word: str) -> Html:
    return tag("span", word, class_=f"s {word.replace(' ', '-')}")


def when(ts: float | None, now: float, *, ago: bool = True) -> Html:
    if ts is None:
        return esc("—")
    moment = datetime.fromtimestamp(ts, UTC)
    text = f"{h.duration(now - ts)} ago" if ago else h.duration(now - ts)
    return tag(
        "time",
        text,
        datetime=moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        title=moment.strftime("%Y-%m-%d %H:%M:%S UTC"),
    )


EMPTY: Final = "—"


def table(table_id: str, rows: Iterable[Html], *, label: str) -> Html:
    columns = TABLES.get(table_id, ("Customer",))
    header = tag("tr", *(tag("th", c, scope="col") for c in columns))
    return tag("table", tag("thead", header), tag("tbody", *rows), id=table_id, aria_label=label)


def row(header: object, *cells: object, **attrs: str | None) -> Html:
    """A row headed by its first cell; an empty cell shows a dash (and no line on a phone)."""
    tds = (
        tag("td", EMPTY, class_="none") if cell in ("", EMPTY) else tag("td", cell)
        for cell in cells
    )
    return tag("tr", tag("th", header, scope="row"), *tds, **attrs)


def more(shown: int, total: int) -> Html:
    if total <= shown:
        return esc("")
    return tag("p", f"… and {total - shown} more, not shown here: see ", link("metrics"), ".")


def link(path: str, text: str | None = None) -> Html:
    # Relative, so the page works behind a reverse proxy that serves it under a path prefix.
    return tag("a", text or f"/{path}", href=path)


def section(anchor: str, title: str, *body: object) -> Html:
    return tag("section", tag("h2", title, id=anchor), *body, aria_labelledby=anchor)


# Sources.


def source_state(state: SourceState) -> str:
    if not state.refreshed:
        return "crawling" if state.refreshing else "pending"
    return "up" if state.up else "down"


def source_row(state: SourceState, now: float) -> Html:
    word = source_state(state)
    oldest = min((p.oldest for p in state.parts.values()), default=state.last_success)
    unreadable = sum(1 for p in state.parts.values() if p.error)
    customers = [str(len(state.parts))]
    if unreadable:
        customers.append(f"{unreadable} unreadable")
    crawl = state.crawl
    if crawl.running and state.refreshed:
        customers.append(f"crawling: {crawl.read + crawl.failed} of {crawl.total}")
    last = when(state.last_success, now)
    if state.last_success is None or now - state.last_success > limits.SOURCE_STALE_HOURS * h.HOUR:
        last = Html(f"{last} {badge('stale')}")
    return row(
        state.name,
        state.vendor,
        # The usual state plain, the others marked.
        word if word == "up" else badge(word),
        "no data" if oldest is None else when(oldest, now, ago=False),
        join(customers, "; "),
        last,
        state.error or "",
    )


def sources(states: Sequence[SourceState], now: float) -> Html:
    rows = (source_row(s, now) for s in states)
    return section("sources", "Sources", table("t-sources", rows, label="Sources"))


# Customers.


def counts(customer: CustomerHealth, level: Level) -> Html:
    parts = []
    for kind, count in customer.counts(level):
        if kind == "customer":
            parts += [p.what for p in customer.problems if p.kind == kind and p.level == level]
        else:
            parts.append(plural(count, kind))
    return join(parts, ", ")


def who(name: str, source: str, customer_id: str) -> Html:
    return Html(f"{esc(name)}<br>{tag('small', f'{source} · {customer_id}')}")


def customer_row(customer: CustomerHealth) -> Html:
    worst = customer.worst
    described = esc("")
    if worst is not None:
        what = (
            worst.what if worst.kind == "customer" else f"{worst.kind} {worst.name}: {worst.what}"
        )
        described = Html(f"{esc(what)} {badge('critical') if worst.critical else ''}".strip())
    return row(
        who(customer.name, customer.source, customer.customer_id),
        badge(customer.level.word),
        counts(customer, Level.FAILED),
        counts(customer, Level.STALE),
        counts(customer, Level.UNPROTECTED),
        described,
        data_source=customer.source,
        data_customer=customer.customer_id,
    )


RULES: Final = (
    f"A licensed seat is stale when its last backup is older than {limits.SEAT_STALE_HOURS} h "
    f"(critical after {limits.SEAT_CRITICAL_HOURS} h) or it never had one; an application when "
    f"it has not finished a backup for {limits.APPLICATION_STALE_HOURS} h, has services not "
    f"backed up in a day, or was last fully protected over {limits.NOT_FULLY_PROTECTED_HOURS} h "
    f"ago (critical); a backup instance after {limits.INSTANCE_STALE_INTERVALS} of its "
    f"intervals without success; a backup running over {limits.BACKUP_TOO_LONG_HOURS} h and a "
    f"restore running over {limits.RESTORE_STUCK_HOURS} h too. Failed: an application's or "
    "instance's newest backup, or a restore in the last "
    f"{limits.RESTORE_FAILED_WITHIN_HOURS} h. Unprotected: unlicensed seats, services not taken "
    "into backup, a customer not active at the vendor. Applications whose backups are switched "
    "off at the vendor are not judged. These are the alert rules' thresholds."
)


def customers(found: Sequence[CustomerHealth]) -> Html:
    problems = [c for c in found if c.level > Level.OK]
    fine = [c for c in found if c.level == Level.OK]
    body = [tag("p", "Worst first: failed, unreadable, stale, unprotected.")]
    if problems:
        rows = map(customer_row, problems[:MAX_ROWS])
        body.append(table("t-customers", rows, label="Customers with problems"))
        body.append(more(MAX_ROWS, len(problems)))
    else:
        body.append(tag("p", "No customer has a problem."))
    if fine:
        ok = (row(who(c.name, c.source, c.customer_id)) for c in fine[:MAX_ROWS])
        summary = tag("summary", f"{plural(len(fine), 'customer')} without problems")
        listed = table("t-ok", ok, label="Customers without problems")
        body.append(tag("details", summary, listed, more(MAX_ROWS, len(fine))))
    body.append(tag("details", tag("summary", "How states are judged"), tag("p", RULES)))
    return section("customers", "Customers", *body)


# Running backups and restores.


def activity_state(activity: Activity, stalled: str) -> Html:
    if activity.level == Level.FAILED:
        return badge("failed")
    if activity.level == Level.STALE:
        return Html(f"{esc(activity.status)} {badge(stalled)}")
    return esc(activity.status)


def running_backups(found: Sequence[Activity], now: float) -> Html:
    if not found:
        return section("running", "Running backups", tag("p", "No backup is running."))
    rows = (
        row(
            who(a.customer, a.source, a.customer_id),
            a.what,
            activity_state(a, "too long"),
            when(a.started, now, ago=False),
            a.detail,
        )
        for a in found[:MAX_ROWS]
    )
    listed = table("t-running", rows, label="Running backups")
    return section("running", "Running backups", listed, more(MAX_ROWS, len(found)))


def recent_restores(found: Sequence[Activity], now: float) -> Html:
    window = limits.RESTORE_FAILED_WITHIN_HOURS
    intro = tag("p", f"Unfinished, and finished in the last {window} h; failed first.")
    if not found:
        return section("restores", "Restores", intro, tag("p", "No restore to show."))
    rows = (
        row(
            who(a.customer, a.source, a.customer_id),
            a.what,
            activity_state(a, "stuck"),
            when(a.started, now),
            when(a.ended, now),
            a.detail,
        )
        for a in found[:MAX_ROWS]
    )
    listed = table("t-restores", rows, label="Restores")
    return section("restores", "Restores", intro, listed, more(MAX_ROWS, len(found)))


# The page.


def verdict(states: Sequence[SourceState], found: Sequence[CustomerHealth]) -> tuple[str, str, str]:
    """The headline, its level word (for colour) and the line under it."""
    by_level = {level: sum(1 for c in found if c.level == level) for level in Level}
    attention = by_level[Level.FAILED] + by_level[Level.UNREADABLE] + by_level[Level.STALE]
    down = sum(1 for s in states if s.refreshed and not s.up)
    if not any(s.refreshed for s in states):
        headline, word = "Waiting for the first crawl", "pending"
    elif attention:
        verb = "needs" if attention == 1 else "need"
        headline = f"{plural(attention, 'customer')} {verb} attention"
        word = "failed" if attention > by_level[Level.STALE] else "stale"
    else:
        headline, word = "No customer needs attention", "ok"
    details = [
        f"{by_level[level]} {level.word}"
        for level in (Level.FAILED, Level.UNREADABLE, Level.STALE)
        if by_level[level]
    ]
    if by_level[Level.UNPROTECTED]:
        details.append(f"{by_level[Level.UNPROTECTED]} with unprotected seats or services")
    details.append(f"{by_level[Level.OK]} without problems")
    if down:
        details.append(f"{down} of {plural(len(states), 'source')} down")
        word = "failed"
    return headline, word, "; ".join(details) + "."


def render(states: Sequence[SourceState], now: float, *, refresh: bool = True) -> str:
    """The whole page."""
    found = h.customers(states, now)
    headline, word, details = verdict(states, found)
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    reload = (
        Html(f"Reloads every minute ({link('?refresh=off', 'stop')}).")
        if refresh
        else Html(f"Does not reload ({link('.', 'reload every minute')}).")
    )
    head = [
        Html('<meta charset="utf-8">'),
        Html('<meta name="viewport" content="width=device-width, initial-scale=1">'),
        Html(f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">') if refresh else "",
        tag("title", f"{headline} · SaaS backup status"),
        tag("style", Html(STYLE)),
    ]
    links = join((link("metrics"), link("-/healthy"), link("-/ready")), " · ")
    header = tag(
        "header",
        tag("h1", "SaaS backup status"),
        tag("p", headline, class_=f"verdict {word}"),
        tag("p", details),
        tag("p", f"As of {stamp}. ", reload, " ", links, class_="mut"),
    )
    main = tag(
        "main",
        sources(states, now),
        customers(found),
        running_backups(h.running(states, now), now),
        recent_restores(h.restores(states, now), now),
    )
    footer = tag("footer", tag("p", f"saas-backup-exporter {__version__}", class_="mut"))
    document = tag("html", tag("head", *head), tag("body", header, main, footer), lang="en")
    return f"<!DOCTYPE html>\n{document}\n"
