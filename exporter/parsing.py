"""Lenient building blocks for vendor response models.

A field that fails to parse becomes ``None`` and is counted, so one bad field drops that field,
not its record; a record that fails drops that record, not its customer.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
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

from exporter.http import ApiStats

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


class Problems:
    """Collects what could not be parsed, for the parse-error counter and a debug log."""

    def __init__(self, stats: ApiStats | None = None) -> None:
        self.count = 0
        self._stats = stats

    def add(self, where: str, what: str) -> None:
        self.count += 1
        if self._stats is not None:
            self._stats.parse_errors += 1
        logger.debug("msg=%s where=%s problem=%s", "dropped unparseable value", where, what)


class VendorModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def lenient(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
    """A field that does not parse becomes None and is counted: it drops the field, not its
    record. Use as ``WrapValidator(lenient)``."""
    if value is None:
        return None
    try:
        return handler(value)
    except ValidationError as exc:
        problems = info.context.get("problems") if isinstance(info.context, dict) else None
        if isinstance(problems, Problems):
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
    if isinstance(value, str):
        return value.strip() or None
    return value


def _timestamp(value: Any) -> Any:
    """ISO 8601 text, epoch seconds or epoch milliseconds -> Unix seconds."""
    if isinstance(value, bool):
        raise ValueError("not a time")
    if isinstance(value, int | float):
        seconds = float(value) / 1000.0 if abs(value) > 1e11 else float(value)
        if not math.isfinite(seconds) or seconds <= 0:
            raise ValueError("not a time")
        return seconds
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text.lstrip("-").replace(".", "", 1).isdigit():
            return _timestamp(float(text))
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    raise ValueError("not a time")


Text = Annotated[str | None, BeforeValidator(_id_text), WrapValidator(lenient)]
Int = Annotated[int | None, BeforeValidator(_number), WrapValidator(lenient)]
Float = Annotated[float | None, BeforeValidator(_number), WrapValidator(lenient)]
Timestamp = Annotated[float | None, BeforeValidator(_timestamp), WrapValidator(lenient)]


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


def alias(*names: str) -> Any:
    """A field read from the first of several names a vendor uses for it."""
    return Field(None, validation_alias=AliasChoices(*names))
