"""Field types shared by every section of the site config: durations, names, decimals."""

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> float:
    """Turn "250ms", "5s", "2m", "1h" into seconds; bare numbers are refused to avoid unit slips."""
    if not isinstance(value, str):
        raise ValueError('durations are strings with a unit, for example "5s" or "250ms"')
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f'{value!r} is not a duration like "250ms", "5s", "2m" or "1h"')
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_decimal(value: object) -> Decimal:
    """A decimal from a string or an int; floats are refused, they cannot hold 0.1 exactly."""
    if isinstance(value, float):
        raise ValueError(
            f'write {value!r} as a string ("{value!r}") or an integer: a float cannot hold '
            "every decimal exactly"
        )
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise ValueError(f'{value!r} is not a decimal number (use a string like "0.1")')
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise ValueError(f'{value!r} is not a decimal number like "0.1"') from None
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite decimal number")
    return number


Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][\w.-]*$")]


class Section(BaseModel):
    """A config table: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


PauseDuration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]


DecimalValue = Annotated[Decimal, BeforeValidator(parse_decimal)]
