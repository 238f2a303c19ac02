"""Chunked transfers: chunks are views of the value's own buffers, credit
bounds what is in flight, a value is handed over only whole,
a transfer resumes from another source, and small messages and concurrent
transfers take turns with a large one."""

from __future__ import annotations

import os
import tracemalloc

import pytest

from mesh.config import Config
from mesh.store import FileSpillDir, Value
from mesh.store._chunks import FileSink, MemorySink
from mesh.store._interleave import Interleaver
from mesh.store._transfer import (
    Cancel,
    Chunk,
    Complete,
    Corrupt,
    Credit,
    Receiver,
    Sender,
    Stalled,
)


def value(*sizes: int, header: bytes = b"hdr") -> Value:
    return Value.of(header, [os.urandom(n) for n in sizes])


def pump(sender: Sender, receiver: Receiver, *, now: float = 0.0, until_seq: int | None = None,
         first: bool = True) -> list:
    """Run a perfect network between the two until nothing moves (or the
    receiver has ``until_seq`` chunks); returns the receiver's effects."""
    effects: list = []
    inbox: list = [sender.offer()] if first else []
    while True:
        while (until_seq is None or receiver.next_seq + len(inbox) < until_seq) and (
                c := sender.next_chunk()) is not None:
            inbox.append(c)
        if not inbox:
            return effects
        for eff in receiver.handle(inbox.pop(0), now):
            effects.append(eff)
            if isinstance(eff, (Credit, Cancel)) and eff.tid == sender.tid:
                sender.handle(eff)


def test_a_value_arrives_whole_in_chunks_cut_from_its_own_buffers():
    v = value(10_000, 0, 333, 5000)
    s = Sender(1, v, chunk_size=1024, window=2)
    r = Receiver(window=2, stall_after=1.0)
    effects = pump(s, r)
    done = [e for e in effects if isinstance(e, Complete)]
    assert len(done) == 1 and done[0].value.same_bytes(v)
    assert s.state == "done" and r.state == "complete"
    assert s.nchunks == -(-v.nbytes // 1024)


def test_chunks_are_views_of_the_value_and_never_joined():
    bufs = [bytearray(os.urandom(3000)), bytearray(os.urandom(3000))]
    v = Value.of(b"h", bufs)
    s = Sender(1, v, chunk_size=2000, window=10)
    s.handle(Credit(1, 0, 10))
    chunks = []
    while (c := s.next_chunk()) is not None:
        chunks.append(c)
    straddling = chunks[1]  # stream bytes 2000..4000: header 1, buffers 1..3001, 3001..
    assert [p.nbytes for p in straddling.parts] == [1001, 999]
    assert straddling.parts[0].obj is bufs[0] and straddling.parts[1].obj is bufs[1]


def test_the_sender_waits_for_credit_and_never_exceeds_its_window():
    s = Sender(1, value(100_000), chunk_size=1000, window=3)
    assert s.next_chunk() is None  # offered, no credit yet
    s.handle(Credit(1, 0, 50))
    sent = [s.next_chunk() for _ in range(5)]
    assert [c.seq for c in sent[:3]] == [0, 1, 2] and sent[3:] == [None, None]
    s.handle(Credit(1, 2, 3))  # two acked, but the receiver allows only chunks below 3
    assert s.next_chunk() is None
    s.handle(Credit(1, 2, 4))
    assert s.next_chunk().seq == 3 and s.next_chunk() is None
    s.handle(Credit(1, 3, 10))  # chunk 3 still in flight: two more fit the window of 3
    assert [s.next_chunk().seq, s.next_chunk().seq, s.next_chunk()] == [4, 5, None]


def test_a_gap_is_answered_once_with_a_rewind_and_the_sender_goes_back():
    v = value(10_000)
    s = Sender(1, v, chunk_size=1000, window=4)
    r = Receiver(window=4, stall_after=1.0)
    s.handle(r.handle(s.offer(), 0.0)[0])
    c0, c1, c2 = s.next_chunk(), s.next_chunk(), s.next_chunk()
    r.handle(c0, 0.0)
    lost = c1
    assert r.handle(c2, 0.0) == [Credit(1, 1, 5, rewind=True)]
    assert r.handle(s.next_chunk(), 0.0) == []  # same gap: no second rewind
    s.handle(Credit(1, 1, 5, rewind=True))
    again = s.next_chunk()
    assert again.seq == lost.seq
    for eff in r.handle(again, 0.0):
        s.handle(eff)
    done = [e for e in pump(s, r, first=False) if isinstance(e, Complete)]
    assert done and done[0].value.same_bytes(v)


def test_a_partly_received_value_is_never_handed_over():
    v = value(50_000)
    s = Sender(1, v, chunk_size=4096, window=4)
    r = Receiver(window=4, stall_after=1.0)
    effects = pump(s, r, until_seq=5)
    assert r.next_seq == 5 and r.value is None
    assert not any(isinstance(e, Complete) for e in effects)


def test_a_stalled_transfer_is_reported_and_asked_to_resend():
    s = Sender(1, value(10_000), chunk_size=1000, window=4)
    r = Receiver(window=4, stall_after=2.0)
    pump(s, r, until_seq=3)
    assert r.tick(1.0) == []
    assert r.tick(2.5) == [Stalled(1), Credit(1, 3, 7, rewind=True)]


def test_a_transfer_resumes_from_another_source_after_the_verified_chunks():
    v = value(20_000)
    a = Sender(1, v, chunk_size=1000, window=4)
    r = Receiver(window=4, stall_after=1.0)
    pump(a, r, until_seq=7)
    b = Sender(2, v, chunk_size=1000, window=4)
    first = r.handle(b.offer(), 0.0)
    assert first == [Cancel(1), Credit(2, 7, 11)]  # the old source stops; resume at 7
    b.handle(first[1])
    assert b.next_chunk().seq == 7
    r2 = Receiver(window=4, stall_after=1.0)
    pump(a := Sender(3, v, chunk_size=1000, window=4), r2, until_seq=6)
    effects = pump(Sender(4, v, chunk_size=2000, window=4), r2)  # 6000 bytes = 3 of 2000
    done = [e for e in effects if isinstance(e, Complete)]
    assert done[0].tid == 4 and done[0].value.same_bytes(v)


def test_a_source_with_other_bytes_restarts_from_zero_and_gives_its_own_value():
    v = value(20_000)
    a = Sender(1, v, chunk_size=1000, window=4)
    r = Receiver(window=4, stall_after=1.0)
    pump(a, r, until_seq=7)
    recomputed = Value.of(v.header, [bytes([v.buffers[0][0] ^ 1]) + bytes(v.buffers[0][1:])])
    b = Sender(2, recomputed, chunk_size=1000, window=4)
    effects = pump(b, r)
    assert effects[:2] == [Cancel(1), Credit(2, 0, 4)]
    assert not any(isinstance(e, Corrupt) for e in effects)
    done = [e for e in effects if isinstance(e, Complete)]
    assert done[0].value.same_bytes(recomputed)


def test_an_offer_with_another_ident_starts_over_even_with_the_same_sizes():
    """Idents name values, not bytes: a receiver keeps its prefix only for the
    ident it was offered, so a value computed again (its own ident) never
    mixes with what arrived of the first."""
    v = value(20_000)
    r = Receiver(window=4, stall_after=1.0)
    pump(Sender(1, v, chunk_size=1000, window=4, ident=b"a" * 16), r, until_seq=7)
    again = Sender(2, v, chunk_size=1000, window=4, ident=b"b" * 16)
    effects = pump(again, r)
    assert effects[:2] == [Cancel(1), Credit(2, 0, 4)]
    done = [e for e in effects if isinstance(e, Complete)]
    assert done[0].value.same_bytes(v) and done[0].value.ident == b"b" * 16


def test_the_ident_travels_with_the_value_so_replicas_offer_the_same():
    v = value(5000)
    r = Receiver(window=4, stall_after=1.0)
    done = [e for e in pump(Sender(1, v, chunk_size=1000, window=4, ident=b"i" * 16), r)
            if isinstance(e, Complete)]
    assert Sender(9, done[0].value, chunk_size=1000, window=4).offer().ident == b"i" * 16


@pytest.mark.parametrize("where", ["memory", "file"])
def test_chunks_decrypted_into_their_place_need_no_write(tmp_path, where):
    """``place`` gives the view of the sink where the chunk due next goes when
    it lands in one piece (the channel decrypts into it); the header's chunk,
    which spans two segments, is written as usual."""
    v = value(10_000, header=b"h" * 100)
    spill = FileSpillDir(str(tmp_path))
    make = (MemorySink if where == "memory"
            else (lambda sizes: FileSink(spill, "v1", sizes)))
    s = Sender(1, v, chunk_size=1000, window=4)
    r = Receiver(window=4, stall_after=1.0, make_sink=make)
    assert r.place(1, 0, 1000) is None  # no offer yet
    for eff in r.handle(s.offer(), 0.0):
        s.handle(eff)
    placed = 0
    while (c := s.next_chunk()) is not None:
        into = r.place(c.tid, c.seq, c.nbytes)
        assert r.place(c.tid, c.seq + 1, c.nbytes) is None  # only the chunk due next
        if into is not None:
            into[:] = b"".join(c.parts)
            c, placed = Chunk(c.tid, c.seq, (into,), placed=True), placed + 1
        for eff in r.handle(c, 0.0):
            if isinstance(eff, Credit):
                s.handle(eff)
    assert placed == s.nchunks - 1
    assert r.state == "complete" and r.value.same_bytes(v)


def test_a_chunk_of_the_wrong_length_is_corrupt():
    r = Receiver(window=4, stall_after=1.0)
    s = Sender(1, value(3000), chunk_size=1000, window=4)
    r.handle(s.offer(), 0.0)
    effects = r.handle(Chunk(1, 0, (memoryview(b"short"),)), 0.0)
    assert isinstance(effects[-1], Corrupt) and "5 bytes, not 1000" in effects[-1].reason


def test_an_empty_value_completes_on_its_offer():
    v = Value.of(b"")
    r = Receiver(window=1, stall_after=1.0)
    effects = r.handle(Sender(1, v, chunk_size=10, window=1).offer(), 0.0)
    assert isinstance(effects[-1], Complete) and effects[-1].value.nbytes == 0


def test_a_value_lands_in_a_spill_file_memory_mapped_and_aligned(tmp_path):
    import mmap

    spill = FileSpillDir(str(tmp_path))
    v = value(70_000, 10, 9000)
    r = Receiver(window=4, stall_after=1.0,
                 make_sink=lambda sizes: FileSink(spill, "incoming", sizes))
    effects = pump(Sender(1, v, chunk_size=4096, window=4), r)
    got = next(e for e in effects if isinstance(e, Complete)).value
    assert got.same_bytes(v)
    assert all(isinstance(b.obj, mmap.mmap) for b in got.buffers)
    assert spill.names() == ["incoming"] and spill.read("incoming").same_bytes(v)


def test_a_discarded_file_sink_leaves_nothing(tmp_path):
    spill = FileSpillDir(str(tmp_path))
    sink = FileSink(spill, "x", (3, 100))
    sink.write(0, [memoryview(b"abc")])
    sink.discard()
    assert os.listdir(tmp_path) == []


def test_receiving_copies_each_byte_once_into_the_preallocated_buffer():
    v = value(8 << 20)
    s = Sender(1, v, chunk_size=Config().transfer_chunk, window=Config().transfer_window)
    r = Receiver(window=Config().transfer_window, stall_after=1.0)
    tracemalloc.start()
    try:
        pump(s, r)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.value is not None and r.value.same_bytes(v)
    assert peak < 1 << 20  # no chunk-sized copies (the sink is an mmap, not traced)


def test_memory_sink_segments_start_64_byte_aligned():
    np = pytest.importorskip("numpy")
    sink = MemorySink((3, 17, 1000))
    sink.write(0, [memoryview(bytes(1020))])
    for buf in sink.value().buffers:
        assert np.frombuffer(buf, dtype=np.uint8).ctypes.data % 64 == 0


# ------------------------------------------------------------- interleaving


def started(tid: int, v: Value, chunk: int = 100, window: int = 100) -> Sender:
    s = Sender(tid, v, chunk_size=chunk, window=window)
    s.handle(Credit(tid, 0, window))
    return s


def test_small_messages_go_between_the_chunks_of_a_large_transfer():
    out = Interleaver(burst=2)
    out.add(started(1, value(10_000)))
    assert isinstance(out.pop(), Chunk)
    for i in range(5):
        out.send(f"m{i}")
    order = [out.pop() for _ in range(8)]
    kinds = ["c" if isinstance(x, Chunk) else x for x in order]
    assert kinds == ["m0", "m1", "c", "m2", "m3", "c", "m4", "c"]


def test_concurrent_transfers_take_turns_one_chunk_each():
    out = Interleaver(burst=4)
    out.add(started(1, value(1000)))
    out.add(started(2, value(350)))
    tids = []
    while (x := out.pop()) is not None:
        tids.append(x.tid)
    assert tids[:8] == [1, 2, 1, 2, 1, 2, 1, 2]
    assert sorted(tids) == [1] * 11 + [2] * 4


def test_a_transfer_without_credit_does_not_hold_up_messages():
    out = Interleaver(burst=1)
    out.add(Sender(1, value(1000), chunk_size=100, window=1))  # no credit yet
    out.send("a")
    out.send("b")
    assert [out.pop(), out.pop(), out.pop()] == ["a", "b", None]


def test_finished_transfers_leave_the_rotation():
    out = Interleaver(burst=1)
    s = started(1, value(50), chunk=1000)
    out.add(s)
    assert isinstance(out.pop(), Chunk)
    s.handle(Credit(1, 1, 1))
    assert s.state == "done"
    assert out.pop() is None and out.transfers == 0


def test_an_array_moves_once_from_dumps_through_a_transfer_into_a_spill_file(tmp_path):
    """dumps -> chunks of the array's own memory -> a spill file -> loads on
    the memory map: the receiving side's array is a view of the file."""
    import mmap

    np = pytest.importorskip("numpy")
    from mesh.store import dumps, loads

    arr = np.arange(1 << 20, dtype=np.float64)  # 8 MiB
    header, buffers = dumps(arr)
    v = Value.of(header, buffers)
    spill = FileSpillDir(str(tmp_path))
    r = Receiver(window=4, stall_after=1.0, make_sink=lambda sizes: FileSink(spill, "k", sizes))
    effects = pump(Sender(1, v, chunk_size=1 << 20, window=4), r)
    got = next(e for e in effects if isinstance(e, Complete)).value
    out = loads(got.header, got.buffers)
    assert np.array_equal(out, arr) and not out.flags.writeable
    assert isinstance(got.buffers[0].obj, mmap.mmap)
    assert np.shares_memory(out, np.frombuffer(got.buffers[0], dtype=np.float64))


def test_a_file_sink_that_cannot_reserve_its_blocks_writes_without_a_map(tmp_path, monkeypatch):
    """Where ``posix_fallocate`` fails (a file system without it, a full
    disk) the sink maps nothing, so no write through a map can fault on a
    missing block: chunks go through ``pwrite``, which reports a full disk."""
    import errno

    from mesh.store import _chunks

    def refuse(fd, offset, size):
        raise OSError(errno.EOPNOTSUPP, "no fallocate here")
    monkeypatch.setattr(_chunks.os, "posix_fallocate", refuse)
    v = value(10_000)
    r = Receiver(window=4, stall_after=1.0,
                 make_sink=lambda sizes: FileSink(FileSpillDir(str(tmp_path)), "v", sizes))
    s = Sender(1, v, chunk_size=1000, window=4)
    for eff in r.handle(s.offer(), 0.0):
        s.handle(eff)
    assert r.place(1, 0, 1000) is None and r.place(1, 1, 1000) is None
    effects = pump(s, r, first=False)
    assert any(isinstance(e, Complete) and e.value.same_bytes(v) for e in effects)
