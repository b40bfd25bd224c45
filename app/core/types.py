"""Input types every schema and parameter uses: clean text, bounded datetimes, strict flags.

Text, datetimes and flags reach PostgreSQL, which refuses NUL bytes, lone surrogates and
timestamps outside its range with a data exception; these types refuse such input at the
edge with a 422 that names the field, so no input can turn into a 500.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    Strict,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from app.core.errors import MAX_FIELD_ERRORS

MIN_YEAR = 1900
MAX_YEAR = 9000
"""Datetime inputs must fall in these years once converted to UTC (PostgreSQL's own range is
wider, but conversions near its ends overflow)."""


@dataclass(frozen=True, slots=True)
class NoControlCharacters:
    """Refuse C0 control characters (but `allowed` ones) and lone surrogates in a string.

    On a plain string the rule is the schema's own `pattern`, so it is checked natively,
    length limits added later still apply natively, and the JSON schema shows it.
    """

    allowed: str = ""

    def refused(self) -> str:
        """The refused C0 characters as character-class ranges, e.g. `\\x00-\\x08\\x0b-\\x1f`."""
        runs: list[list[int]] = []
        for code in (c for c in range(0x20) if chr(c) not in self.allowed):
            if runs and runs[-1][-1] == code - 1:
                runs[-1].append(code)
            else:
                runs.append([code])
        return "".join(
            f"\\x{run[0]:02x}" + (f"-\\x{run[-1]:02x}" if len(run) > 1 else "") for run in runs
        )

    @property
    def pattern(self) -> str:
        """The regular expression (Python, Rust and ECMA alike) a conforming text matches."""
        return f"^[^{self.refused()}]*$"

    def check(self, value: str) -> str:
        """Return the text unchanged, or raise the error a pattern mismatch gives."""
        if re.search(f"[{self.refused()}\ud800-\udfff]", value):
            raise PydanticCustomError(
                "string_pattern_mismatch",
                "String should match pattern '{pattern}'",
                {"pattern": self.pattern},
            )
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        """Put the rule into a plain string schema; check it after other string types."""
        # NUL and lone surrogates cannot be stored by PostgreSQL (22021) and would answer
        # 500 further in; other C0 characters have no place in names, emails or filters.
        # A pattern also refuses lone surrogates: the text must be valid Unicode to be matched.
        schema = handler(source)
        if schema["type"] == "str" and "pattern" not in schema:
            return {**schema, "pattern": self.pattern}
        return core_schema.no_info_after_validator_function(self.check, schema)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """Document the rule as a pattern where the type has none of its own."""
        json_schema = handler(schema)
        json_schema.setdefault("pattern", self.pattern)
        return json_schema


SingleLine = Annotated[str, NoControlCharacters()]
"""One line of text: names, emails, filters, passwords, tokens."""
MultiLine = Annotated[str, NoControlCharacters(allowed="\t\n")]
"""Free text that may span lines (tabs and newlines allowed, no other control character)."""


def _to_utc_in_range(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not MIN_YEAR <= utc.year <= MAX_YEAR:
        raise PydanticCustomError(
            "datetime_range",
            "Datetime must lie between the years {min_year} and {max_year} in UTC.",
            {"min_year": MIN_YEAR, "max_year": MAX_YEAR},
        )
    return utc


ISO_DATETIME_START = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]")


def _iso_text_only(value: Any) -> Any:
    # Numbers (and numeric strings) would be read as Unix timestamps; the API speaks ISO 8601.
    if isinstance(value, datetime) or (isinstance(value, str) and ISO_DATETIME_START.match(value)):
        return value
    raise PydanticCustomError("datetime_type", "Datetime must be an ISO 8601 string.")


BoundedDatetime = Annotated[
    AwareDatetime,
    # Bodies are validated strictly, but a datetime arrives as a JSON string.
    Strict(False),
    BeforeValidator(_iso_text_only),
    AfterValidator(_to_utc_in_range),
]
"""A datetime with a timezone, converted to UTC, in the years 1900 to 9000."""


def _integral_float(value: Any) -> Any:
    # JSON Schema counts `3.0` as an integer; a strict `int` would refuse the float it parses to.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


JsonInteger = BeforeValidator(_integral_float)
"""Marks an integer of a strict body that JSON may also spell `3.0` (`"3"` and `3.5` stay
refused). Put it after the field's bounds: `Annotated[int, Field(ge=1), JsonInteger]`."""


def _query_flag(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise PydanticCustomError("bool_parsing", "Flag must be `true` or `false`.")


QueryFlag = Annotated[bool, BeforeValidator(_query_flag)]
"""A boolean query parameter: exactly `true` or `false` (not `yes`, `1` or `on`)."""

JsonStringForm = Strict(False)
"""Marks an enum or UUID field of a strict body: FastAPI validates the parsed JSON in Python
mode, where strict validation would refuse the string form such values have in JSON."""


class RequestBody(BaseModel):
    """Base of every JSON request body: unknown fields refused, no lax coercion.

    Strict means `"false"` is not a boolean and `"1"` not a number. Enums and UUIDs keep
    their JSON string form through `JsonStringForm`; `BoundedDatetime` already does.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _refuse_floods_of_unknown_fields(cls, data: Any) -> Any:
        # 100,000 unknown keys would each become an error object (about a second of CPU
        # for an anonymous caller); past the cap one error says it all.
        if isinstance(data, dict) and len(data) > len(cls.model_fields) + MAX_FIELD_ERRORS:
            raise PydanticCustomError(
                "too_many_fields",
                "The body has {count} fields; this request knows {known}.",
                {"count": len(data), "known": len(cls.model_fields)},
            )
        return data
