"""Log lines are logfmt or JSON, whoever logs them."""

from __future__ import annotations

import json
import logging

from exporter.logs import JsonFormatter, LogfmtFormatter, logfmt_value


def record(msg: str, *args: object, name: str = "exporter.cache") -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, None)


def test_logfmt_quotes_values_that_need_it() -> None:
    line = LogfmtFormatter().format(
        record(
            "msg=%s source=%s reason=%s took=%.1f", "refresh failed", "datto", 'HTTP "504"', 1.25
        )
    )
    assert line.startswith("ts=")
    assert ' level=warn logger=exporter.cache msg="refresh failed" source=datto ' in line
    assert 'reason="HTTP \\"504\\"" took=1.2' in line


def test_foreign_messages_are_wrapped() -> None:
    line = LogfmtFormatter().format(record("Uvicorn running on %s", "http://x", name="uvicorn"))
    assert line.endswith('msg="Uvicorn running on http://x"')


def test_json_lines() -> None:
    data = json.loads(
        JsonFormatter().format(record("msg=%s source=%s reason=%s", "refresh failed", "d", "a b"))
    )
    assert data["msg"] == "refresh failed"
    assert data["source"] == "d"
    assert data["reason"] == "a b"
    assert data["level"] == "warn"


def test_logfmt_value() -> None:
    assert logfmt_value("plain") == "plain"
    assert logfmt_value("") == '""'
    assert logfmt_value("a=b") == '"a=b"'
    assert logfmt_value("line\nbreak") == '"line\\nbreak"'
