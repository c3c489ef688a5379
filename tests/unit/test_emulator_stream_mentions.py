"""Which statements the Snowflake emulator rewrites because they name a stream
(``aurora_sync_ops.local.snowflake.router.mentions_any``): a stream's name as a whole word, in
any case, as the regular expression per stream it replaced matched; fast with thousands of
streams (a regular expression per stream recompiled every one of them per statement once there
were more than ``re`` caches, issue 15)."""

from __future__ import annotations

import re

import pytest

from aurora_sync_ops.local.snowflake.router import mentions_any

NAMES = ["ORDERS_STREAM", "Mixed$Case", "with space"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT * FROM orders_stream", True),
        ('INSERT INTO t SELECT * FROM "DB"."S"."ORDERS_STREAM"', True),
        ("SELECT * FROM db.s.Orders_Stream WHERE x = 1", True),
        ("SELECT * FROM orders_stream_2", False),
        ("SELECT * FROM my_orders_stream", False),
        ("SELECT orders_streams FROM t", False),
        ("SELECT * FROM mixed$case", True),
        ("SELECT * FROM mixed$cases", False),
        ('SELECT * FROM "with space"', True),
        ("SELECT 1", False),
    ],
)
def test_a_stream_is_mentioned_as_a_whole_word_in_any_case(text: str, expected: bool) -> None:
    assert mentions_any(text, NAMES) is expected
    # The same answer as the regular expression per name it replaced.
    assert any(re.search(rf"\b{re.escape(n)}\b", text, re.I) for n in NAMES) is expected


def test_the_one_of_thousands_of_streams_a_statement_names_is_found() -> None:
    names = [f"T{i:04d}_STREAM" for i in range(3000)]
    assert mentions_any("SELECT * FROM db.s.t2999_stream", names)
    assert not mentions_any("SELECT * FROM db.s.t3000_stream", names)
