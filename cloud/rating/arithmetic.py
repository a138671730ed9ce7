"""The decimal arithmetic of rating: a context that never rounds silently, and its bounds.

Python's default decimal context keeps 28 digits and rounds half-even without a word, while
the event contract admits quantities of 30 digits before and 30 after the point
(`shared.bounds`): in it `1e17 + 1e-18` silently loses its small part. Rating therefore never
uses the ambient context (async tasks share the thread's): every entry point (`measure`,
`duration_value`, `price`, `rate_period`, `prorate`, `add_amounts`) enters `exact()`, a
`decimal.localcontext` of `EXACT`, and `round_money` passes its context explicitly:

    EXACT       PRECISION (160) digits; every signal trapped (Inexact, Rounded, Overflow,
                InvalidOperation, DivisionByZero, Clamped, Subnormal, Underflow, and
                FloatOperation: a float never mixes with money)

160 digits make every operation of rating on bounded inputs exact: a quantity or a plan number
(price, fee, included units, tier bound, package size) has at most 30 digits each side of the
point, so a sum of up to 10^30 quantities has at most 90 digits and its product with a price
at most 150, with room left for the sum of the tiers. What cannot be exact anyway raises a
trapped signal, which `exact()` turns into `RatingOutOfBounds`: never a rounded number, never
an `InvalidOperation` traceback.

Rounding happens in exactly two documented places, each with its own context:

    ROUNDING    `round_money`: quantize half-up to the currency's minor unit (Inexact and
                Rounded are the point there, so they are not trapped)
    PRORATION   `prorate`: amount x part / period is a division that is inexact in general;
                the quotient is taken to PRECISION digits with ROUND_05UP (round towards zero,
                except that a last digit of 0 or 5 moves away from it when anything was cut),
                so a tie at the minor unit stays a tie and anything below or above it stays
                below or above: the half-up rounding that follows equals the half-up rounding
                of the exact rational value (no double rounding)

Durations are divided with integers (`divide_half_up`), not in any context, and a package count
is an integer division with its remainder (`divmod`), exact in `EXACT`.

Magnitudes: a line's amount must lie strictly inside +-MAX_AMOUNT (10^18 major units, beyond any
real invoice), so a rounded amount has at most 21 significant digits, and even code outside
rating that adds a few million of them in the default 28-digit context stays exact.
"""

from collections.abc import Mapping
from decimal import (
    ROUND_05UP,
    ROUND_HALF_UP,
    Clamped,
    Context,
    Decimal,
    DecimalException,
    DivisionByZero,
    FloatOperation,
    Inexact,
    InvalidOperation,
    Overflow,
    Rounded,
    Subnormal,
    Underflow,
    localcontext,
)
from types import TracebackType

from cloud.errors import RatingOutOfBounds
from shared.bounds import MAX_QUANTITY_FRACTION_DIGITS, MAX_QUANTITY_INTEGER_DIGITS

PRECISION = 160
MAX_AMOUNT = Decimal("1e18")
"""A line's exact amount (and so its rounded one) lies in (-MAX_AMOUNT, MAX_AMOUNT)."""
MAX_INTEGER_DIGITS = MAX_QUANTITY_INTEGER_DIGITS  # of a plan number, as of a quantity: 30
MAX_FRACTION_DIGITS = MAX_QUANTITY_FRACTION_DIGITS  # 30

_NEVER_SILENT = [Clamped, DivisionByZero, InvalidOperation, Overflow, Subnormal, Underflow]
EXACT = Context(
    prec=PRECISION,
    rounding=ROUND_HALF_UP,
    traps=[*_NEVER_SILENT, Inexact, Rounded, FloatOperation],
)
ROUNDING = Context(prec=PRECISION, rounding=ROUND_HALF_UP, traps=[*_NEVER_SILENT, FloatOperation])
PRORATION = Context(prec=PRECISION, rounding=ROUND_05UP, traps=[*_NEVER_SILENT, FloatOperation])


def exact(where: Mapping[str, object] | None = None) -> "ExactArithmetic":
    """Run the block in `EXACT`; a trapped signal becomes `RatingOutOfBounds` naming `where`
    (account_id, plan, version, charge), and one raised inside gets `where` added."""
    return ExactArithmetic(where)


class ExactArithmetic:
    """The context manager of `exact()` (a class: it runs several times per rated line)."""

    __slots__ = ("_local", "_where")

    def __init__(self, where: Mapping[str, object] | None) -> None:
        self._where = where
        self._local = localcontext(EXACT)  # enters a copy: flags raised here stay here

    def __enter__(self) -> None:
        self._local.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._local.__exit__(exc_type, exc, traceback)
        place = dict(self._where or {})
        if isinstance(exc, DecimalException):
            raise RatingOutOfBounds(
                f"{_place_text(place)}a value cannot be computed exactly in {PRECISION} digits "
                f"({type(exc).__name__}): a quantity or a price is beyond the rating bounds",
                detail={**place, "precision": PRECISION},
            ) from exc
        if isinstance(exc, RatingOutOfBounds):  # from an inner entry point: add where it happened
            missing = {key: value for key, value in place.items() if key not in exc.detail}
            if missing:
                raise RatingOutOfBounds(
                    _place_text(missing) + exc.message, detail={**missing, **exc.detail}
                ) from exc


def check_amount(amount: Decimal, *, what: str, where: Mapping[str, object]) -> Decimal:
    """`amount` if finite and strictly inside +-MAX_AMOUNT; else `RatingOutOfBounds`."""
    if amount.is_finite() and amount.copy_abs() < MAX_AMOUNT:
        return amount
    place = dict(where)
    raise RatingOutOfBounds(
        f"{_place_text(place)}{what} {_short(amount)} is beyond the bound of "
        f"{_short(MAX_AMOUNT)} per line",
        detail={**place, "what": what, "amount": _short(amount), "bound": str(MAX_AMOUNT)},
    )


def check_number(value: Decimal, *, what: str, where: Mapping[str, object]) -> Decimal:
    """`value` if finite with at most 30 digits each side of the point; else `RatingOutOfBounds`."""
    if value.is_finite():
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)
        if exponent >= -MAX_FRACTION_DIGITS and value.adjusted() < MAX_INTEGER_DIGITS:
            return value  # the common case, without counting digits
        integer, fraction = digits(value)
        if integer <= MAX_INTEGER_DIGITS and fraction <= MAX_FRACTION_DIGITS:
            return value
    place = dict(where)
    raise RatingOutOfBounds(
        f"{_place_text(place)}{what} {_short(value)} is beyond the rating bounds "
        f"({MAX_INTEGER_DIGITS} digits before and {MAX_FRACTION_DIGITS} after the point)",
        detail={**place, "what": what, "value": _short(value)},
    )


def digits(value: Decimal) -> tuple[int, int]:
    """How many digits a finite value has before and after the point, trailing zeros aside."""
    if value.is_zero():
        return 0, 0
    _, coefficient, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    significant = len(coefficient)
    while coefficient[significant - 1] == 0:  # a nonzero value has a nonzero digit
        significant -= 1
        exponent += 1
    return max(0, significant + exponent), max(0, -exponent)


def divide_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to an integer, ties away from zero (exact: integers)."""
    if denominator <= 0:
        raise ValueError("the denominator must be positive")
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return -quotient if numerator < 0 else quotient


def _place_text(where: Mapping[str, object]) -> str:
    """E.g. "account 'home-1', plan 'home' v1, charge 'kwh': "."""
    parts = []
    if "account_id" in where:
        parts.append(f"account {where['account_id']!r}")
    if "plan" in where:
        parts.append(f"plan {where['plan']!r} v{where.get('version')}")
    if "charge" in where:
        parts.append(f"charge {where['charge']!r}")
    return f"{', '.join(parts)}: " if parts else ""


def _short(value: Decimal) -> str:
    """A value for a message: exact when short, else 7 significant digits (about)."""
    text = str(value)
    if len(text) <= 40 or not value.is_finite():
        return text[:40]
    return f"about {value:.6E}"
