"""Lenient building blocks for vendor response models.

A field that fails to parse becomes ``None`` and is counted, so one bad field drops that field,
not its record; a record that fails drops that record, not its customer. Values are sane or
absent: text is valid Unicode (``model.valid_text``), counts are finite and not negative, and
times fall between 2000 and a day after the read; anything else is dropped and counted.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Final, TypeVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

from exporter.http import ApiStats, VendorError, list_items
from exporter.model import valid_text

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")

# 2000-01-01T00:00:00Z: no SaaS backup happened before.
EARLIEST_TIME: Final = 946684800.0
# How far ahead of the read a time may be (clock skew at the vendor) before it is implausible.
FUTURE_SLACK_SECONDS: Final = 86400.0


class Problems:
    """Collects what could not be parsed, for the parse-error counter and a debug log. ``now``
    is the time of the read that times are judged against (None: the wall clock)."""

    def __init__(self, stats: ApiStats | None = None, now: float | None = None) -> None:
        self.count = 0
        self._stats = stats
        self.now = now

    def add(self, where: str, what: str) -> None:
        self.count += 1
        if self._stats is not None:
            self._stats.parse_errors += 1
        logger.debug("msg=%s where=%s problem=%s", "dropped unparseable value", where, what)


class VendorModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def _problems(info: ValidationInfo) -> Problems | None:
    problems = info.context.get("problems") if isinstance(info.context, dict) else None
    return problems if isinstance(problems, Problems) else None


def lenient(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
    """A field that does not parse becomes None and is counted: it drops the field, not its
    record. Use as ``WrapValidator(lenient)``."""
    if value is None:
        return None
    try:
        return handler(value)
    except ValidationError as exc:
        problems = _problems(info)
        if problems is not None:
            problems.add(str(info.field_name), exc.errors(include_input=False)[0]["type"])
        return None


def _id_text(value: Any) -> Any:
    # Datto's spec has string ids, its live API integers; both must name the same customer.
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value


def _number(value: Any) -> Any:
    # Some vendors send counts as strings ("12"); an empty string means "not given".
    if isinstance(value, bool):
        raise ValueError("not a number")
    if isinstance(value, str):
        return value.strip() or None
    return value


def _count(value: float | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except OverflowError:
        raise ValueError("not a count") from None
    if not (math.isfinite(number) and number >= 0):
        raise ValueError("not a count")
    return value


def _epoch(value: float) -> float:
    """Epoch seconds or milliseconds -> seconds."""
    seconds = value / 1000.0 if abs(value) > 1e11 else value
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError("not a time")
    return seconds


def _timestamp(value: Any) -> Any:
    """ISO 8601 text, epoch seconds or epoch milliseconds -> Unix seconds."""
    if isinstance(value, bool):
        raise ValueError("not a time")
    try:
        if isinstance(value, int | float):
            return _epoch(float(value))
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return None
            # Only ASCII digits: float() would read other scripts' digits as well.
            if not text.isascii():
                raise ValueError("not a time")
            if text.lstrip("-").replace(".", "", 1).isdigit():
                return _epoch(float(text))
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.timestamp()
    except OverflowError:
        raise ValueError("not a time") from None
    raise ValueError("not a time")


def plausible_time(seconds: float, now: float | None = None) -> bool:
    """Between 2000 and a day after ``now`` (None: the wall clock)."""
    latest = (time.time() if now is None else now) + FUTURE_SLACK_SECONDS
    return math.isfinite(seconds) and EARLIEST_TIME <= seconds <= latest


def plausible(value: float | None, info: ValidationInfo) -> float | None:
    """A parsed time outside the plausible range is dropped and counted. Use as
    ``AfterValidator(plausible)``, inside ``WrapValidator(lenient)``."""
    problems = _problems(info)
    if value is not None and not plausible_time(value, problems.now if problems else None):
        raise ValueError("implausible time")
    return value


def _text(value: str | None) -> str | None:
    return None if value is None else valid_text(value)


Text = Annotated[
    str | None, BeforeValidator(_id_text), AfterValidator(_text), WrapValidator(lenient)
]
Int = Annotated[
    int | None, BeforeValidator(_number), AfterValidator(_count), WrapValidator(lenient)
]
Float = Annotated[
    float | None, BeforeValidator(_number), AfterValidator(_count), WrapValidator(lenient)
]
Timestamp = Annotated[
    float | None,
    BeforeValidator(_timestamp),
    AfterValidator(plausible),
    WrapValidator(lenient),
]
RawDict = Annotated[dict[str, Any] | None, WrapValidator(lenient)]
RawList = Annotated[list[Any] | None, WrapValidator(lenient)]


def parse_records(
    items: Iterable[Any],
    model: type[M],
    problems: Problems,
    where: str,
    valid: Callable[[M], bool] = lambda _: True,
) -> list[M]:
    """Parse each item on its own; an item that is not a usable record is skipped and counted."""
    out = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            problems.add(f"{where}[{index}]", "not an object")
            continue
        try:
            record = model.model_validate(item, context={"problems": problems})
        except ValidationError as exc:
            problems.add(f"{where}[{index}]", exc.errors(include_input=False)[0]["type"])
            continue
        if not valid(record):
            problems.add(f"{where}[{index}]", "missing identifier")
            continue
        out.append(record)
    return out


def unwrap_list(body: Any, key: str) -> list[Any] | None:
    """Accept a bare array or ``{key: [...]}``; anything else is not this endpoint's shape."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict) and isinstance(body.get(key), list):
        return list(body[key])
    return None


def wrong_shape(problems: Problems, what: str) -> VendorError:
    """The error for an answer that is not the endpoint's shape at all, counted."""
    problems.add(what, "unexpected response shape")
    return VendorError(f"{what}: unexpected response shape")


def items_of(body: Any, key: str, problems: Problems, what: str) -> list[Any]:
    """``http.list_items``, with an answer of the wrong shape counted."""
    try:
        return list_items(body, key)
    except VendorError:
        raise wrong_shape(problems, what) from None


def first_by_id(records: Iterable[R], key: Callable[[R], object]) -> list[R]:
    """Each id once, the first record given for it: a vendor that lists an id twice must not
    make two series of it."""
    seen: dict[object, R] = {}
    for record in records:
        seen.setdefault(key(record), record)
    return list(seen.values())


def alias(*names: str) -> Any:
    """A field read from the first of several names a vendor uses for it."""
    return Field(None, validation_alias=AliasChoices(*names))
