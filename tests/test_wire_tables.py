"""A large member table is packed a slice of rows per loop turn, into exactly
the bytes packing it at once gives."""

from __future__ import annotations

import asyncio

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from mesh.wire._tables import pack_table

_rows = st.lists(st.tuples(st.text(max_size=8), st.integers(0, 2**40),
                           st.dictionaries(st.text(max_size=4), st.integers(-2**63, 2**63 - 1),
                                           max_size=3)),
                 max_size=60)


def _pack(head: dict, rows: list, step: int, each=None) -> tuple[bytes, int]:
    turns = 0

    async def turn() -> None:
        nonlocal turns
        turns += 1
        await asyncio.sleep(0)

    body = asyncio.run(pack_table(head, "rows", rows, step, turn, each))
    return body, turns


@settings(max_examples=200, deadline=None)
@given(rows=_rows, step=st.integers(1, 70), join=st.booleans())
def test_a_table_packed_in_slices_is_the_table_packed_at_once(rows, step, join) -> None:
    body, turns = _pack({"join": join}, rows, step)
    assert body == msgpack.packb({"join": join, "rows": rows}, use_bin_type=True)
    assert turns == max(0, -(-len(rows) // step) - 1)


def test_rows_are_converted_slice_by_slice() -> None:
    rows = [(f"n{i}", i) for i in range(10)]
    body, turns = _pack({"self": "me"}, rows, 3, each=lambda r: {"name": r[0], "n": r[1]})
    assert msgpack.unpackb(body) == {"self": "me",
                                     "rows": [{"name": f"n{i}", "n": i} for i in range(10)]}
    assert turns == 3


def test_a_head_field_named_like_the_table_is_refused() -> None:
    try:
        _pack({"rows": 1}, [], 1)
    except ValueError as exc:
        assert "rows" in str(exc)
    else:
        raise AssertionError("expected ValueError")
