"""Log formatting (logfmt or JSON) and the last line of defence against leaked secrets.

Our modules log templates of ``key=%s`` pairs; the formatter quotes each argument as logfmt
requires, and the JSON formatter turns the same pairs into fields.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import Any, Final

REDACTED: Final = "<redacted>"
_NEEDS_QUOTES = re.compile(r'[\s"=\\]')
_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')
_LEVELS: Final = {"WARNING": "warn", "CRITICAL": "error"}


def logfmt_value(value: object) -> str:
    text = str(value)
    if text == "" or _NEEDS_QUOTES.search(text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class _Redactor:
    def __init__(self) -> None:
        self._secrets: tuple[str, ...] = ()

    def register(self, secrets: Iterable[str]) -> None:
        # Short strings would redact ordinary words; real keys are long.
        self._secrets = tuple(sorted({s for s in (*self._secrets, *secrets) if len(s) >= 6}))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


redact = _Redactor()


def _message(record: logging.LogRecord) -> str:
    """The record's message as logfmt pairs, whoever logged it."""
    template = str(record.msg)
    if template.startswith("msg=") and record.args:
        args = record.args if isinstance(record.args, tuple) else (record.args,)
        quoted = tuple(logfmt_value(a) if isinstance(a, str) else a for a in args)
        try:
            return template % quoted
        except (TypeError, ValueError):
            pass
    return "msg=" + logfmt_value(record.getMessage())


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + (
        f".{int(record.msecs):03d}Z"
    )


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = _LEVELS.get(record.levelname, record.levelname.lower())
        line = f"ts={_timestamp(record)} level={level} logger={record.name} {_message(record)}"
        if record.exc_info:
            line += " exc=" + logfmt_value(self.formatException(record.exc_info))
        return redact(line)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": _LEVELS.get(record.levelname, record.levelname.lower()),
            "logger": record.name,
        }
        for key, raw in _PAIR.findall(_message(record)):
            value = raw
            if raw.startswith('"'):
                value = raw[1:-1].replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
            fields.setdefault(key, value)
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(fields, ensure_ascii=False))


def setup(level: str = "info", fmt: str = "logfmt", stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request at INFO; our own counters already say it.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def add_flags(parser: argparse.ArgumentParser) -> None:
    """--log.level and --log.format, as every subcommand takes them."""
    parser.add_argument(
        "--log.level",
        dest="log_level",
        default=argparse.SUPPRESS,
        choices=["debug", "info", "warn", "warning", "error"],
    )
    parser.add_argument(
        "--log.format", dest="log_format", default=argparse.SUPPRESS, choices=["logfmt", "json"]
    )
