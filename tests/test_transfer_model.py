"""hypothesis: random chunk sizes and windows, drops, reorders, duplicates,
stalls and source switches (to the same value, or to one computed again with
other bytes and its own ident) always end in the right bytes or no value,
and the sender never has more than its window in flight. A corrupted chunk
never reaches a receiver: the channel's AES-GCM refuses it and the channel
ends (``tests/test_dataplane_real.py``, ``tests/test_wire*.py``), which is
a drop here."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from mesh.store import Value
from mesh.store._transfer import (
    Cancel,
    Complete,
    Corrupt,
    Credit,
    Offer,
    Receiver,
    Sender,
    Stalled,
)

VALUES = st.builds(
    lambda header, buffers: Value.of(header, buffers),
    st.binary(max_size=40), st.lists(st.binary(max_size=2000), max_size=3))
CHUNKS = st.integers(1, 400)
INDEX = st.integers(0, 10_000)


def other_bytes(value: Value, at: int) -> Value:
    """The same sizes, other bytes (the first and one more): a value computed
    again that differs, also in the chunks a receiver may already have."""
    segs = [bytearray(s) for s in value.segments()]
    flat = [(i, j) for i, s in enumerate(segs) for j in range(len(s))]
    if not flat:
        return Value.of(b"x")
    for i, j in {flat[0], flat[at % len(flat)]}:
        segs[i][j] ^= 0xFF
    return Value.of(bytes(segs[0]), segs[1:])


class Transfer(RuleBasedStateMachine):
    @initialize(value=VALUES, chunk=CHUNKS, window=st.integers(1, 5),
                rwindow=st.integers(1, 5))
    def start(self, value, chunk, window, rwindow):
        self.value = value
        self.window = window
        self.receiver = Receiver(window=rwindow, stall_after=1.0)
        self.now = 0.0
        self.to_r: list = []
        self.to_s: list = []
        self.senders: dict[int, Sender] = {}
        self.values: dict[int, Value] = {}
        self.completed: list[Complete] = []
        self.next_tid = 0
        self.source(value, chunk)

    def source(self, value, chunk):
        self.next_tid += 1
        sender = Sender(self.next_tid, value, chunk_size=chunk, window=self.window)
        self.senders[sender.tid] = sender
        self.values[sender.tid] = value
        self.to_r.append(sender.offer())

    def effects(self, effects):
        for eff in effects:
            if isinstance(eff, (Credit, Cancel)):
                self.to_s.append(eff)
            elif isinstance(eff, Complete):
                self.completed.append(eff)
            else:
                assert isinstance(eff, Stalled)

    @rule(same=st.booleans(), chunk=CHUNKS, at=INDEX)
    def switch_source(self, same, chunk, at):
        if not same:
            self.value = other_bytes(self.value, at)
        self.source(self.value, chunk)

    @rule(n=st.integers(1, 8))
    def senders_send(self, n):
        for sender in self.senders.values():
            for _ in range(n):
                chunk = sender.next_chunk()
                if chunk is None:
                    break
                assert chunk.seq < sender.limit
                self.to_r.append(chunk)

    @precondition(lambda self: self.to_r)
    @rule(i=INDEX, reorder=st.booleans())
    def deliver_to_receiver(self, i, reorder):
        msg = self.to_r.pop(i % len(self.to_r) if reorder else 0)
        self.effects(self.receiver.handle(msg, self.now))

    @precondition(lambda self: self.to_s)
    @rule(i=INDEX, reorder=st.booleans())
    def deliver_to_sender(self, i, reorder):
        msg = self.to_s.pop(i % len(self.to_s) if reorder else 0)
        self.senders[msg.tid].handle(msg)

    @precondition(lambda self: self.to_r or self.to_s)
    @rule(i=INDEX, to_receiver=st.booleans())
    def drop(self, i, to_receiver):
        queue = self.to_r if (to_receiver and self.to_r) or not self.to_s else self.to_s
        queue.pop(i % len(queue))

    @precondition(lambda self: self.to_r)
    @rule(i=INDEX)
    def duplicate(self, i):
        self.to_r.append(self.to_r[i % len(self.to_r)])

    @rule(rounds=st.integers(1, 3))
    def network_works_for_a_while(self, rounds):
        for _ in range(rounds):
            self.senders_send(1)
            while self.to_r:
                self.deliver_to_receiver(0, False)
            while self.to_s:
                self.deliver_to_sender(0, False)

    @rule(dt=st.floats(0.1, 2.0))
    def time_passes(self, dt):
        self.now += dt
        self.effects(self.receiver.tick(self.now))

    @invariant()
    def window_holds_and_values_are_whole(self):
        if not hasattr(self, "receiver"):
            return
        for sender in self.senders.values():
            assert 0 <= sender.in_flight <= sender.window
        assert len(self.completed) <= 1
        for done in self.completed:
            assert done.value.same_bytes(self.values[done.tid])

    def teardown(self):
        if not hasattr(self, "receiver"):
            return
        # A clean network and a clean source finish it.
        for _ in range(1):
            if self.completed:
                break
            self.to_r.clear()
            self.to_s.clear()
            self.source(self.value, 1 + len(self.value.header))
            for _ in range(10_000):
                self.senders_send(8)
                while self.to_r:
                    self.deliver_to_receiver(0, False)
                while self.to_s:
                    self.deliver_to_sender(0, False)
                if self.completed or self.receiver.state == "waiting":
                    break
        assert self.completed, "clean sources did not finish the transfer"
        done = self.completed[0]
        assert done.value.same_bytes(self.values[done.tid])
        assert self.receiver.handle(Offer(999, (1,), b"", 1), self.now) == []  # done is done
        assert self.receiver.state == "complete"


TestTransfer = Transfer.TestCase
TestTransfer.settings = settings(max_examples=300, stateful_step_count=50, deadline=None)


@settings(max_examples=300, deadline=None)
@given(value=VALUES, first_chunk=CHUNKS, second_chunk=CHUNKS, received=st.integers(0, 50),
       same=st.booleans(), at=INDEX)
def test_switching_source_mid_transfer_gives_the_new_sources_bytes(
        value, first_chunk, second_chunk, received, same, at):
    """Resume keeps the received chunks only for the same bytes; a value
    computed again with other bytes starts over. Never a mix, never a
    needless restart failure."""
    receiver = Receiver(window=4, stall_after=1.0)
    effects = run(Sender(1, value, chunk_size=first_chunk, window=4), receiver, until=received)
    second = value if same else other_bytes(value, at)
    effects += run(Sender(2, second, chunk_size=second_chunk, window=4), receiver)
    assert not any(isinstance(e, Corrupt) for e in effects)
    done = [e for e in effects if isinstance(e, Complete)]
    assert len(done) == 1
    assert done[0].value.same_bytes(value if done[0].tid == 1 else second)


def run(sender: Sender, receiver: Receiver, until: int | None = None) -> list:
    effects: list = []
    inbox: list = [sender.offer()]
    while inbox:
        for eff in receiver.handle(inbox.pop(0), 0.0):
            effects.append(eff)
            if isinstance(eff, (Credit, Cancel)) and eff.tid == sender.tid:
                sender.handle(eff)
        while (until is None or receiver.next_seq + len(inbox) < until) and (
                c := sender.next_chunk()) is not None:
            inbox.append(c)
    return effects
