"""The pages' one precision policy for costs (web/format.py's `money`)."""

from __future__ import annotations

import pytest

from spanloom.server.web.format import money


@pytest.mark.parametrize(
    ("cost", "shown"),
    [
        (None, "$0"),
        (0, "$0"),
        (0.0000004, "<$0.000001"),
        (0.00000123456, "$0.00000123"),
        (0.0094, "$0.0094"),
        (0.00945678, "$0.00946"),
        (0.0123, "$0.0123"),
        (0.01, "$0.01"),
        (0.09996, "$0.10"),
        (0.5, "$0.50"),
        (0.123456, "$0.123"),
        (0.994, "$0.994"),
        (0.0100001, "$0.01"),
        (0.205, "$0.205"),
        (0.9996, "$1.00"),
        (1.005, "$1.00"),
        (12.3456, "$12.35"),
        (1234567.891, "$1,234,567.89"),
        (float("nan"), "—"),
        (float("inf"), "—"),
    ],
)
def test_costs_have_up_to_three_significant_digits_below_a_dollar_and_cents_above(cost, shown):
    assert money(cost) == shown


def test_the_two_figures_of_the_issue_read_in_the_same_precision():
    # "$0.01" beside "$0.0094" was the complaint: both now carry their significant digits.
    assert (money(0.0123), money(0.0094)) == ("$0.0123", "$0.0094")
