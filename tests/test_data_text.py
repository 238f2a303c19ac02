"""``read_text`` blocks: every line in exactly one block, whatever the sizes."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mesh.data._text import read_block, text_parts

lines_st = st.lists(st.text(alphabet="ab é\r", max_size=12), max_size=30)


@settings(max_examples=200, deadline=None)
@given(lines=lines_st, blocksize=st.integers(1, 40), final_newline=st.booleans())
def test_blocks_split_on_line_boundaries(lines: list[str], blocksize: int,
                                         final_newline: bool) -> None:
    text = "\n".join(lines) + ("\n" if final_newline and lines else "")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.txt"
        path.write_bytes(text.encode())
        got = [line for p in text_parts([str(path)], blocksize, "utf-8")
               for line in read_block(*p.args)]
    expected = text.split("\n")
    if text.endswith("\n") or not text:
        expected = expected[:-1]
    assert got == [line[:-1] if line.endswith("\r") else line for line in expected]
