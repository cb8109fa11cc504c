"""Fuels, the (fuel, direction) series, and numbers from the API: each named once.

:func:`decimal` is the one conversion of a price, a kWh or a calorific value -- as the API
sends it (a decimal string, a JSON number) or as a JSON file keeps it -- into an exact
:class:`~decimal.Decimal`: a string as written, a float by its shortest ``repr`` (``0.1`` is
``Decimal("0.1")``, not the binary float's 55 digits). Anything else is refused with
:class:`~octomon.errors.BadNumber` (a ``ValueError``): ``null``, a bool, ``""``, ``"n/a"``,
``NaN``, ``Infinity``. :func:`decimal_or_none` is the same for a value that may be absent.

Standard library only, ``decimal`` imported when a number is converted: ``cache status``
and ``status`` import this module and never convert one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from octomon.errors import BadNumber

if TYPE_CHECKING:
    from decimal import Decimal

ELECTRICITY = "electricity"
GAS = "gas"
FUELS = (ELECTRICITY, GAS)

Series = tuple[str, str]  # (fuel, direction)
IMPORT: Series = (ELECTRICITY, "import")
EXPORT: Series = (ELECTRICITY, "export")
GAS_IMPORT: Series = (GAS, "import")


def decimal(value: Any) -> Decimal:
    """``value`` as the exact, finite Decimal it was written as; else :class:`BadNumber`."""
    from decimal import Decimal, InvalidOperation

    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise BadNumber(value)
    try:
        number = Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        raise BadNumber(value) from None
    if not number.is_finite():
        raise BadNumber(value)
    return number


def decimal_or_none(value: Any) -> Decimal | None:
    """:func:`decimal`, or None for anything it refuses (an absent or unusable field)."""
    try:
        return decimal(value)
    except BadNumber:
        return None
