"""LIKE patterns match their text literally: `%`, `_` and the escape character are escaped."""

import pytest
from sqlalchemy import bindparam, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import LIKE_ESCAPE, contains_pattern, prefix_pattern


def test_patterns_escape_wildcards_and_the_escape_character() -> None:
    assert contains_pattern("50%_off\\") == "%50\\%\\_off\\\\%"
    assert prefix_pattern("a_b.") == "a\\_b.%"


@pytest.mark.parametrize(
    ("value", "pattern", "matches"),
    [
        ("a_b.created", prefix_pattern("a_b."), True),
        ("axb.created", prefix_pattern("a_b."), False),
        ("x.a_b.y", prefix_pattern("a_b."), False),
        ("50% off today", contains_pattern("50%"), True),
        ("500 off today", contains_pattern("50%"), False),
    ],
)
async def test_postgresql_reads_the_patterns_literally(
    db_session: AsyncSession, value: str, pattern: str, matches: bool
) -> None:
    query = select(literal(value).like(bindparam("pattern"), escape=LIKE_ESCAPE))
    assert await db_session.scalar(query, {"pattern": pattern}) is matches
