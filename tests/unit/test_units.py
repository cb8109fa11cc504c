"""The one Decimal conversion (octomon.units), and where it guards a kept file."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from octomon import redact
from octomon.errors import BadNumber
from octomon.octopus.published import Published, Rate
from octomon.units import decimal, decimal_or_none

T0 = datetime(2026, 11, 27, 14, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.2415", "0.2415"),
        (" 624.0 ", "624.0"),
        ("0E+1", "0E+1"),
        ("-2.1", "-2.1"),
        (0.1, "0.1"),  # the float's shortest repr, not its 55 binary digits
        (39.5, "39.5"),
        (5, "5"),
        (Decimal("1.25"), "1.25"),
    ],
)
def test_numbers_convert_exactly_as_written(value: Any, expected: str) -> None:
    assert str(decimal(value)) == expected
    assert decimal_or_none(value) == Decimal(expected)


@pytest.mark.parametrize(
    "value", [None, True, False, "", "  ", "n/a", "NaN", "sNaN", "Infinity", float("inf"), [], {}]
)
def test_anything_else_is_a_bad_number_and_a_value_error(value: Any) -> None:
    with pytest.raises(BadNumber) as info:
        decimal(value)
    assert isinstance(info.value, ValueError)
    assert info.value.message.startswith("not a number: ")
    assert decimal_or_none(value) is None


def test_the_message_holds_no_secret_and_stays_short() -> None:
    secret = "sk_live_0123456789abcdef0123"
    redact.register(secret)
    try:
        with pytest.raises(BadNumber) as info:
            decimal(secret + "x" * 100)
    finally:
        redact.clear()
    assert secret not in info.value.message
    assert len(info.value.message) <= len("not a number: ") + 41


def test_a_kept_price_of_n_a_is_a_value_error_not_an_invalid_operation() -> None:
    """tariffs.json with a price changed to "n/a": its reader sees a ValueError (a damaged
    file), never decimal.InvalidOperation ("unexpected … please report it")."""
    rate = Rate("E-1R-X", "standard", None, Decimal("0.2"), Decimal("0.19"))
    book = Published([], {("electricity", "import"): {T0: (rate,)}})
    obj = book.to_obj()
    assert Published.from_obj(obj).prices == book.prices
    obj["rates"]["electricity/import"][0][3] = "n/a"
    with pytest.raises(ValueError, match="not a number: 'n/a'"):
        Published.from_obj(obj)
