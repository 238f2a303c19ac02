"""``--memory-limit SIZE``: units, percentages, bytes, and clear errors; the
default budget split among the nodes of one machine; its Config fields."""

from __future__ import annotations

import pytest

from mesh.config import Config
from mesh.errors import ConfigError
from mesh.store import default_memory_limit, machine_memory, parse_size, spill_limit

GIB = 1 << 30


@pytest.mark.parametrize(("text", "expected"), [
    ("2GiB", 2 * GIB), ("2gib", 2 * GIB), ("2 GiB", 2 * GIB), ("500MB", 500_000_000),
    ("500MiB", 500 << 20), ("1.5GB", 1_500_000_000), ("1000000", 1_000_000), ("64B", 64),
    ("10kb", 10_000), ("3KiB", 3072), ("1TiB", 1 << 40), ("0", 0), ("4k", 4000),
])
def test_sizes_with_units_and_bare_bytes(text, expected):
    assert parse_size(text) == expected


def test_a_percentage_is_a_share_of_the_given_or_the_machines_ram():
    assert parse_size("40%", total=10 * GIB) == 4 * GIB
    assert parse_size("100%", total=1000) == 1000
    assert parse_size("50%") == machine_memory() // 2


@pytest.mark.parametrize(("text", "words"), [
    ("2XB", "unknown unit 'XB'"), ("", "not a size"), ("GiB", "not a size"),
    ("-1GiB", "not a size"), ("0%", "percentage"), ("150%", "percentage"),
    ("1.5", "whole"), ("1e30TB", "too large"), ("two GiB", "not a size"),
])
def test_bad_sizes_raise_a_value_error_naming_the_input(text, words):
    with pytest.raises(ValueError) as info:
        parse_size(text)
    assert isinstance(info.value, ConfigError)
    assert f"--memory-limit {text!r}" in str(info.value)
    assert words in str(info.value)


def test_the_option_named_in_the_error_is_the_one_given():
    with pytest.raises(ConfigError, match="--spill-limit 'x'"):
        parse_size("x", option="--spill-limit")


def test_the_default_budget_is_a_share_of_ram_split_among_the_nodes():
    cfg = Config()
    assert cfg.memory_limit is None
    assert default_memory_limit(1, cfg.memory_share, total=24 * GIB) == 12 * GIB
    assert default_memory_limit(3, cfg.memory_share, total=24 * GIB) == 4 * GIB
    assert default_memory_limit(2, 0.5) == machine_memory() // 4
    with pytest.raises(ValueError, match="nodes"):
        default_memory_limit(0, 0.5)
    with pytest.raises(ValueError, match="share"):
        default_memory_limit(1, 1.5)


def test_the_transfer_defaults_fit_a_chunk_in_one_http_body():
    cfg = Config()
    assert cfg.transfer_chunk * 2 <= cfg.max_http_body
    assert cfg.transfer_window >= 2 and cfg.transfer_burst >= 1


def test_the_spill_limit_leaves_the_reserve_free(tmp_path):
    assert spill_limit(str(tmp_path), 0) > 0
    assert spill_limit(str(tmp_path), 1 << 62) == 0  # never below 0
