"""The console's money and name formatting: never $0 for a cost that is not zero, narrow
enough for a table column, and names that differ at the end still read apart."""

from __future__ import annotations

import pytest

from omen_tui.format import elide, money


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "-"),
        (0, "$0"),
        (0.00008, "$0.00008"),  # a cheap request: its first significant digit
        (0.000083, "$0.00008"),
        (0.000096, "$0.0001"),  # rounds up into the next decade without a trailing zero
        (0.000003, "$0.000003"),
        (0.0000002, "<$.000001"),  # below a millionth: a bound, still not $0
        (0.0008, "$0.0008"),
        (0.0054, "$0.0054"),
        (0.05, "$0.05"),
        (1.239, "$1.24"),
        (999.99, "$999.99"),
        (1234.5, "$1,234"),
        (-0.00008, "-$0.00008"),
        (-3.5, "-$3.50"),
    ],
)
def test_money_shows_the_first_significant_digits_of_small_amounts(
    value: float | None, shown: str
) -> None:
    assert money(value) == shown


def test_money_is_never_zero_for_a_positive_amount_and_stays_narrow() -> None:
    amounts = [10.0**-exponent * digit for exponent in range(2, 12) for digit in (1, 3, 9.99)]
    for amount in amounts:
        assert money(amount) not in ("$0", "$0.00", "$0.0000"), amount
        assert len(money(amount)) <= 9, (amount, money(amount))
    assert money(None, none="not known") == "not known"


def test_elide_cuts_the_middle_so_similar_names_stay_apart() -> None:
    assert elide("openai/gpt-4o-mini", 18) == "openai/gpt-4o-mini"
    assert elide("openai/gpt-4o-mini", 14) == "openai/…o-mini"
    short, long = elide("openai/gpt-4o", 12), elide("openai/gpt-4o-mini", 12)
    assert short != long and long.endswith("mini") and len(long) == 12
    assert elide("ollama/deepseek-coder-v2:16b", 22) == "ollama/deep…der-v2:16b"
    assert elide("anything", 1) == "…" and elide("anything", 0) == ""
