"""The core input types: text without control characters, bounded datetimes, strict flags."""

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, ConfigDict, EmailStr, Field, TypeAdapter, ValidationError

from app.core.errors import MAX_FIELD_ERRORS
from app.core.types import (
    MAX_YEAR,
    MIN_YEAR,
    BoundedDatetime,
    JsonInteger,
    JsonStringForm,
    MultiLine,
    NoControlCharacters,
    QueryFlag,
    RequestBody,
    SingleLine,
)

C0_BUT_TAB_AND_NEWLINE = [chr(c) for c in range(0x20) if chr(c) not in "\t\n"]


def error_type(adapter: TypeAdapter[Any], value: object) -> str:
    """Validate a value that must fail; return the error type."""
    with pytest.raises(ValidationError) as caught:
        adapter.validate_python(value)
    (error,) = caught.value.errors()
    return str(error["type"])


@pytest.mark.parametrize("character", [*C0_BUT_TAB_AND_NEWLINE, "\t", "\n"])
def test_single_line_refuses_every_c0_character(character: str) -> None:
    assert error_type(TypeAdapter(SingleLine), f"a{character}b") == "string_pattern_mismatch"


@pytest.mark.parametrize("character", C0_BUT_TAB_AND_NEWLINE)
def test_multi_line_refuses_control_characters_but_tab_and_newline(character: str) -> None:
    assert error_type(TypeAdapter(MultiLine), f"a{character}b") == "string_pattern_mismatch"


@pytest.mark.parametrize("text_type", [SingleLine, MultiLine])
@pytest.mark.parametrize("surrogate", [chr(0xD800), chr(0xDFFF)])
def test_lone_surrogates_are_refused(text_type: Any, surrogate: str) -> None:
    assert error_type(TypeAdapter(text_type), f"a{surrogate}b") == "string_unicode"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("x@example.org", None),
        ("x\x01@example.org", "value_error"),
        ("x@exa\ud800.org", "value_error"),
    ],
)
def test_the_rule_also_guards_string_types_that_are_not_plain(
    value: str, expected: str | None
) -> None:
    adapter = TypeAdapter(Annotated[EmailStr, NoControlCharacters()])
    assert adapter.json_schema()["pattern"] == "^[^\\x00-\\x1f]*$"
    if expected is None:
        assert adapter.validate_python(value) == value
    else:
        assert error_type(adapter, value) == expected


def test_the_check_after_another_pattern_keeps_both() -> None:
    adapter = TypeAdapter(Annotated[str, Field(pattern=r"^[a-z\x00]+$"), NoControlCharacters()])
    assert adapter.validate_python("abc") == "abc"
    assert error_type(adapter, "a\x00") == "string_pattern_mismatch"
    assert error_type(adapter, "abc!") == "string_pattern_mismatch"


def test_ordinary_text_passes_unchanged() -> None:
    text = "Zoë's room: ünïcödé, emoji 🚀, quotes \" and backslashes \\"
    assert TypeAdapter(SingleLine).validate_python(text) == text
    assert TypeAdapter(MultiLine).validate_python("line one\n\tline two") == "line one\n\tline two"


def test_the_json_schema_carries_the_rule_as_a_pattern() -> None:
    assert TypeAdapter(SingleLine).json_schema() == {
        "type": "string",
        "pattern": "^[^\\x00-\\x1f]*$",
    }
    assert TypeAdapter(MultiLine).json_schema() == {
        "type": "string",
        "pattern": "^[^\\x00-\\x08\\x0b-\\x1f]*$",
    }


def test_length_limits_of_the_field_still_apply_and_show() -> None:
    adapter = TypeAdapter(Annotated[SingleLine, Field(min_length=2, max_length=4)])
    assert adapter.json_schema()["maxLength"] == 4
    assert adapter.json_schema()["minLength"] == 2
    assert error_type(adapter, "abcde") == "string_too_long"
    assert error_type(adapter, "a\x00") == "string_pattern_mismatch"


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+14:00",  # overflows when converted to UTC
        "9999-12-31T23:59:59-14:00",  # likewise, at the other end
        f"{MIN_YEAR - 1}-12-31T23:59:59Z",
        f"{MIN_YEAR}-01-01T00:30:00+01:00",  # 1899 in UTC
        f"{MAX_YEAR + 1}-01-01T00:00:00Z",
    ],
)
def test_datetimes_outside_the_years_are_refused(value: str) -> None:
    assert error_type(TypeAdapter(BoundedDatetime), value) == "datetime_range"


@pytest.mark.parametrize("value", [0, 1_700_000_000, 1.5, "0", "1700000000", "tomorrow"])
def test_datetimes_are_iso_strings_not_timestamps(value: object) -> None:
    assert error_type(TypeAdapter(BoundedDatetime), value) == "datetime_type"


def test_datetimes_need_a_timezone() -> None:
    assert error_type(TypeAdapter(BoundedDatetime), "2024-05-01T10:00:00") == "timezone_aware"


def test_datetimes_are_converted_to_utc_at_both_ends_of_the_range() -> None:
    adapter = TypeAdapter(BoundedDatetime)
    assert adapter.validate_python("2024-05-01T12:00:00+02:00") == datetime(
        2024, 5, 1, 10, tzinfo=UTC
    )
    assert adapter.validate_python(f"{MIN_YEAR}-01-01T00:00:00Z").year == MIN_YEAR
    assert adapter.validate_python(f"{MAX_YEAR}-12-31T23:59:59Z").year == MAX_YEAR


def test_datetimes_are_accepted_as_json_strings_in_strict_bodies() -> None:
    class Body(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        starts_at: BoundedDatetime

    body = Body.model_validate({"starts_at": "2024-05-01T10:00:00Z"})
    assert body.starts_at == datetime(2024, 5, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("false", False), (True, True)])
def test_query_flags_read_true_and_false(value: object, expected: bool) -> None:
    assert TypeAdapter(QueryFlag).validate_python(value) is expected


@pytest.mark.parametrize("value", ["yes", "no", "1", "0", "on", "True", "FALSE", "", 1])
def test_query_flags_refuse_every_other_spelling(value: object) -> None:
    assert error_type(TypeAdapter(QueryFlag), value) == "bool_parsing"


def test_query_flags_are_documented_as_booleans() -> None:
    assert TypeAdapter(QueryFlag).json_schema() == {"type": "boolean"}


class Colour(StrEnum):
    """An enum of a test body."""

    RED = "red"


class Thing(RequestBody):
    """A body with one field of every kind the API uses."""

    name: SingleLine
    count: int
    active: bool
    colour: Annotated[Colour, JsonStringForm]
    owner: Annotated[uuid.UUID, JsonStringForm]
    at: BoundedDatetime


VALID_THING = {
    "name": "a",
    "count": 1,
    "active": True,
    "colour": "red",
    "owner": "00000000-0000-4000-8000-000000000001",
    "at": "2024-05-01T10:00:00Z",
}


def test_request_bodies_accept_the_json_forms() -> None:
    thing = Thing.model_validate(VALID_THING)
    assert thing.colour is Colour.RED
    assert thing.owner == uuid.UUID(VALID_THING["owner"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("active", "false"),
        ("active", 0),
        ("count", "1"),
        ("count", 1.0),
        ("count", True),
        ("name", 5),
        ("colour", "RED"),
        ("at", 1_700_000_000),
    ],
)
def test_request_bodies_do_not_coerce(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        Thing.model_validate({**VALID_THING, field: value})
    assert [e["loc"] for e in caught.value.errors()] == [(field,)]


def test_request_bodies_refuse_unknown_fields_one_by_one() -> None:
    with pytest.raises(ValidationError) as caught:
        Thing.model_validate({**VALID_THING, **{f"x{i}": 1 for i in range(MAX_FIELD_ERRORS)}})
    assert len(caught.value.errors()) == MAX_FIELD_ERRORS
    assert {e["type"] for e in caught.value.errors()} == {"extra_forbidden"}


def test_a_flood_of_unknown_fields_is_one_error() -> None:
    flood = {f"{i:x}": 1 for i in range(110_000)}
    with pytest.raises(ValidationError) as caught:
        Thing.model_validate(flood)
    (error,) = caught.value.errors(include_input=False)
    assert error["type"] == "too_many_fields"
    assert error["msg"] == "The body has 110000 fields; this request knows 6."


class Counted(RequestBody):
    """A strict body with a bounded count that JSON may spell `3.0`."""

    count: Annotated[int, Field(ge=1, le=10), JsonInteger]


def test_a_json_integer_accepts_its_float_spelling() -> None:
    assert Counted.model_validate({"count": 3.0}).count == 3


@pytest.mark.parametrize("value", ["3", 3.5, True, 0.0, 11])
def test_a_json_integer_refuses_other_types_and_keeps_its_bounds(value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        Counted.model_validate({"count": value})
    assert [e["loc"] for e in caught.value.errors()] == [("count",)]


def test_a_json_integer_documents_its_bounds() -> None:
    schema = Counted.model_json_schema()["properties"]["count"]
    assert (schema["type"], schema["minimum"], schema["maximum"]) == ("integer", 1, 10)
