"""`seats` at a terminal: a progress bar on one, plain lines otherwise, a typed confirmation
before unlicensing many seats, and no control character from the vendor reaching the screen."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from tests.test_seats_support import add_seats, seats, set_states, table, vendor


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_progress_bar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    with vendor(tmp_path) as v:
        customer = v.customer()
        set_states(customer, "Active")
        add_seats(customer, 250)
        run = seats(
            capsys,
            v,
            "change",
            "--customer",
            customer.id,
            "--action",
            "license",
            "--where",
            "state=unlicensed",
            "--apply",
        )
        assert run.code == 0, screen.getvalue()
    text = screen.getvalue()
    for done, filled in ((0, 0), (1, 12), (2, 24)):
        bar = "#" * filled + "." * (30 - filled)
        assert (
            f"\r\x1b[K[{bar}] {done}/3 requests, {done * 100}/250 seats  sending request "
            f"{done + 1}/3: {min(100, 250 - done * 100)} seats"
        ) in text
    assert f"\r\x1b[K[{'#' * 30}] 3/3 requests, 250/250 seats  done\n" in text
    audits = [line for line in text.split("\n") if 'msg="seat change request"' in line]
    assert len(audits) == 3
    # Each audit line starts on a line of its own, the bar cleared first.
    assert all(line.rsplit("\r\x1b[K", 1)[-1].startswith("ts=") for line in audits)


def test_plain_lines_when_not_on_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with vendor(tmp_path) as v:
        customer = v.customer()
        set_states(customer, "Active")
        add_seats(customer, 101)
        run = seats(
            capsys,
            v,
            "change",
            "--customer",
            customer.id,
            "--action",
            "license",
            "--where",
            "state=unlicensed",
            "--apply",
        )
        assert run.code == 0
    assert "\r" not in run.err
    for line in (
        "sending request 1/2: 100 seats (User)",
        "sent request 1/2: accepted, to be confirmed",
        "sending request 2/2: 1 seat (User)",
        "sent request 2/2: accepted, to be confirmed",
        "reading the seats again to confirm 101 seats",
    ):
        assert f"{line}\n" in run.err


@pytest.mark.parametrize(("answer", "code"), [("unlicense 12\n", 0), ("yes\n", 2), ("", 2)])
def test_unlicensing_many_seats_on_a_terminal_asks_for_a_typed_confirmation(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    code: int,
) -> None:
    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    monkeypatch.setattr(sys, "stdin", Terminal(answer))
    with vendor(tmp_path) as v:
        customer = v.customer()
        set_states(customer, "Unprotected")
        ids = add_seats(customer, 12, state="Active")
        run = seats(
            capsys,
            v,
            "change",
            "--customer",
            customer.id,
            "--action",
            "unlicense",
            "--ids",
            ",".join(ids),
            "--apply",
        )
        assert run.code == code
        prompt = f"Type 'unlicense 12' to unlicense 12 seats of {customer.name}: "
        assert prompt in screen.getvalue()
        assert "30-day countdown" in screen.getvalue()
        if code == 0:
            assert set(v.states(customer, ids)) == {"Unprotected"}
        else:
            assert "seats: not confirmed; nothing was changed" in screen.getvalue()
            assert v.puts() == []
            assert set(v.states(customer, ids)) == {"Active"}


def test_vendor_text_cannot_drive_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with vendor(tmp_path) as v:
        customer = v.customer()
        [seat_id] = add_seats(customer, 1)
        customer.seats[-1].name = "Mallory\x1b]0;pwned\x07\x1b[2J"
        for output in ("table", "csv"):
            run = seats(capsys, v, "list", "--customer", customer.id, "--output", output)
            assert run.code == 0
            assert "\x1b" not in run.out
            assert "\x07" not in run.out
            assert "Mallory\ufffd]0;pwned\ufffd\ufffd[2J" in run.out
        run = seats(
            capsys, v, "change", "--customer", customer.id, "--action", "license", "--ids", seat_id
        )
        assert "\x1b" not in run.out
        assert "Mallory\ufffd" in table(run.out)[seat_id]
