"""Serialization without copies: arrays, bytes, memoryviews and frames travel
as their own buffers; the msgpack header stays small; unpicklable values
raise a TypeError naming their type."""

from __future__ import annotations

import pickle
import threading
import tracemalloc

import msgpack
import numpy as np
import pytest

from mesh.errors import MeshError
from mesh.store import SerializationError, dumps, loads
from mesh.store._serialize import INBAND_LIMIT


def test_a_64_mib_array_round_trips_without_a_copy_of_its_data():
    a = np.arange(8 << 20, dtype=np.float64)  # 64 MiB
    tracemalloc.start()
    try:
        header, buffers = dumps(a)
        b = loads(header, buffers)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # nothing near 64 MiB was allocated
    assert len(header) < 1024
    assert [buf.nbytes for buf in buffers] == [a.nbytes]
    assert np.shares_memory(np.frombuffer(buffers[0], dtype=np.float64), a)
    assert np.shares_memory(a, b)
    assert np.array_equal(a, b)


def test_values_rebuilt_on_read_only_buffers_are_read_only_views():
    a = np.arange(1000, dtype=np.int32).reshape(10, 100)
    header, buffers = dumps(a)
    frozen = [memoryview(bytes(buf)) for buf in buffers]  # as a spill file or transfer gives
    b = loads(header, frozen)
    assert np.array_equal(a, b) and not b.flags.writeable
    assert np.shares_memory(b, np.frombuffer(frozen[0], dtype=np.int32))


def test_a_fortran_ordered_array_keeps_its_order():
    a = np.asfortranarray(np.arange(20000, dtype=np.float32).reshape(100, 200))
    header, buffers = dumps(a)
    assert len(buffers) == 1
    b = loads(header, buffers)
    assert b.flags.f_contiguous and np.array_equal(a, b)


def test_a_non_contiguous_array_is_copied_in_band_and_still_round_trips():
    a = np.arange(100_000, dtype=np.int64)[::3]
    header, buffers = dumps(a)
    assert np.array_equal(loads(header, buffers), a)


def test_large_bytes_and_memoryviews_travel_as_their_own_buffers():
    blob = b"x" * 100_000
    view = memoryview(np.arange(5000, dtype=np.float64)).cast("B").cast("d", (50, 100))
    value = {"blob": blob, "view": view, "parts": [b"y" * 5000, "text"], "n": 3}
    header, buffers = dumps(value)
    assert sorted(b.nbytes for b in buffers) == [5000, 40_000, 100_000]
    assert any(b.obj is blob for b in buffers)  # a view of the bytes object itself
    assert len(header) < 1024
    back = loads(header, buffers)
    assert back["blob"] == blob and type(back["blob"]) is bytes
    assert back["view"].format == "d" and back["view"].shape == (50, 100)
    assert back["view"].tobytes() == view.tobytes()
    assert back["parts"] == [b"y" * 5000, "text"] and back["n"] == 3


def test_small_buffers_stay_in_the_stream():
    header, buffers = dumps([b"a" * (INBAND_LIMIT - 1), np.zeros(10)])
    assert buffers == []
    back = loads(header, buffers)
    assert back[0] == b"a" * (INBAND_LIMIT - 1) and np.array_equal(back[1], np.zeros(10))


@pytest.mark.parametrize("value", [0, -5, 2**70, 1.5, "tekst", True, None, b"", b"ab",
                                   [1, "2"], {"a": (1, 2)}, {1, 2}])
def test_plain_values_round_trip(value):
    header, buffers = dumps(value)
    assert loads(header, buffers) == value


def test_scalars_are_msgpack_and_others_carry_a_pickle_stream_in_a_msgpack_header():
    assert msgpack.unpackb(dumps("hi")[0]) == [1, 0, "hi", []]
    version, kind, payload, sizes = msgpack.unpackb(dumps(np.zeros(1000))[0])
    assert (version, kind, sizes) == (1, 1, [8000])
    assert isinstance(payload, bytes) and len(payload) < 512


def test_pandas_frames_travel_as_buffers():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"x": np.arange(200_000, dtype=np.float64),
                       "y": np.arange(200_000, dtype=np.int64)})
    header, buffers = dumps(df)
    assert sum(b.nbytes for b in buffers) >= 2 * 8 * 200_000
    assert len(header) < 4096
    back = loads(header, buffers)
    pd.testing.assert_frame_equal(back, df)


def test_an_unpicklable_value_raises_a_type_error_naming_its_type():
    class Holder:
        def __init__(self):
            self.lock = threading.Lock()

    with pytest.raises(TypeError) as info:
        dumps(Holder())
    err = info.value
    assert isinstance(err, SerializationError) and isinstance(err, MeshError)
    assert "Holder" in str(err) and "lock" in str(err)
    assert err.type_name.endswith("Holder")


def test_buffers_that_do_not_match_the_header_are_refused():
    header, _ = dumps(np.zeros(1000))
    with pytest.raises(ValueError, match="describes buffers"):
        loads(header, [])
    with pytest.raises(ValueError, match="describes buffers"):
        loads(header, [b"x" * 10])
    with pytest.raises(ValueError, match="not a value header"):
        loads(b"\xc1garbage")
    with pytest.raises(ValueError, match="version"):
        loads(msgpack.packb([99, 0, 1, []]))


def test_a_value_pickled_by_plain_pickle_is_the_same_value():
    value = {"a": np.arange(10_000), "b": b"z" * 3000}
    header, buffers = dumps(value)
    back = loads(header, buffers)
    plain = pickle.loads(pickle.dumps(value))
    assert np.array_equal(back["a"], plain["a"]) and back["b"] == plain["b"]
