"""The value checks every command relies on: colours, text, email, phone, money, custom fields."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain import values as v
from domain.errors import InvalidValueError


def test_a_colour_is_lowercased() -> None:
    assert v.color("#A1B2C3") == "#a1b2c3"


@pytest.mark.parametrize("bad", ["a1b2c3", "#abc", "#gggggg", "#a1b2c3d", " #a1b2c3", ""])
def test_a_colour_not_in_the_form_rrggbb_is_rejected(bad: str) -> None:
    with pytest.raises(InvalidValueError) as refusal:
        v.color(bad)
    assert refusal.value.field == "color"


def test_a_colour_with_a_trailing_newline_is_rejected() -> None:
    with pytest.raises(InvalidValueError):
        v.color("#a1b2c3\n")


def test_text_is_stripped_and_limited_after_stripping() -> None:
    assert v.text("name", "  Ada  ", max_length=3) == "Ada"
    with pytest.raises(InvalidValueError):
        v.text("name", "Ada!", max_length=3)


def test_required_text_must_not_be_blank() -> None:
    with pytest.raises(InvalidValueError) as refusal:
        v.text("name", " \t ", max_length=10)
    assert refusal.value.field == "name"


def test_blank_optional_text_becomes_none() -> None:
    assert v.optional_text("company", None, max_length=5) is None
    assert v.optional_text("company", "   ", max_length=5) is None
    assert v.optional_text("company", " Acme ", max_length=5) == "Acme"


def test_an_email_is_stripped_and_lowercased_and_blank_means_none() -> None:
    assert v.email("  Ada@Example.COM ") == "ada@example.com"
    assert v.email("") is None
    assert v.email(None) is None


@pytest.mark.parametrize("bad", ["ada", "ada@example", "a b@example.com", "a@@example.com"])
def test_a_malformed_email_is_rejected(bad: str) -> None:
    with pytest.raises(InvalidValueError):
        v.email(bad)


def test_an_email_longer_than_254_characters_is_rejected() -> None:
    with pytest.raises(InvalidValueError):
        v.email("a@" + "b" * 250 + ".com")


@pytest.mark.parametrize("good", ["+44 20 7946 0000", "(555) 010-0100", "12345"])
def test_a_phone_number_is_kept_as_written(good: str) -> None:
    assert v.phone(f" {good} ") == good


@pytest.mark.parametrize("bad", ["1234", "+1 (2) 3-4", "call me", "555-CALL-NOW", "1" * 33])
def test_a_phone_number_needs_five_digits_and_only_phone_characters(bad: str) -> None:
    with pytest.raises(InvalidValueError):
        v.phone(bad)


@pytest.mark.parametrize(
    ("given", "amount"),
    [(10, "10.00"), ("12.345", "12.34"), (Decimal("0.5"), "0.50"), (1.25, "1.25")],
)
def test_money_is_a_decimal_with_two_places(given: object, amount: str) -> None:
    cleaned = v.money(given)  # type: ignore[arg-type]
    assert cleaned == Decimal(amount)
    assert cleaned is not None and cleaned.as_tuple().exponent == -2


@pytest.mark.parametrize("bad", ["-0.01", "abc", "NaN", "Infinity", float("inf"), "1e15"])
def test_money_outside_zero_to_ten_to_the_fifteen_is_rejected(bad: object) -> None:
    with pytest.raises(InvalidValueError) as refusal:
        v.money(bad)  # type: ignore[arg-type]
    assert refusal.value.field == "estimated_value"


def test_the_largest_amount_of_money_is_accepted() -> None:
    assert v.money("999999999999999.99") == Decimal("999999999999999.99")


def test_money_that_rounds_up_to_ten_to_the_fifteen_is_rejected() -> None:
    with pytest.raises(InvalidValueError):
        v.money("999999999999999.999")


def test_custom_fields_are_copied_and_none_means_empty() -> None:
    given = {"tier": "gold", "seats": 12, "ratio": 0.5, "vip": True, "note": None}
    cleaned = v.custom_fields(given)
    assert cleaned == given
    assert cleaned is not given
    assert v.custom_fields(None) == {}


def test_custom_fields_accept_up_to_the_limits() -> None:
    many = {f"k{i}": i for i in range(v.CUSTOM_FIELDS_MAX)}
    assert v.custom_fields(many) == many
    assert v.custom_fields({"k" * 64: "x" * 2000}) == {"k" * 64: "x" * 2000}


@pytest.mark.parametrize(
    "bad",
    [
        {f"k{i}": i for i in range(v.CUSTOM_FIELDS_MAX + 1)},
        {"": 1},
        {"k" * 65: 1},
        {"k": [1, 2]},
        {"k": {"nested": 1}},
        {"k": Decimal("1")},
        {"k": "x" * 2001},
        {"k": float("nan")},
    ],
)
def test_custom_fields_that_cannot_be_stored_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidValueError) as refusal:
        v.custom_fields(bad)
    assert refusal.value.field == "custom_fields"


def test_a_custom_field_key_that_is_not_a_string_is_rejected() -> None:
    with pytest.raises(InvalidValueError):
        v.custom_fields({1: "x"})  # type: ignore[dict-item]
