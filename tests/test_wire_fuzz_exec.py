"""hypothesis over the exec decoders (client and peer), fed through the real
codec: random shapes and near-misses of every exec message, sealed with the
cluster secret (as an insider's would be), opened and handed to the sans-IO
exec core. Whatever arrives: only ``ProtocolViolation`` escapes, the core's
tables grow by at most a few entries per message, and no message takes more
than a few milliseconds."""

from __future__ import annotations

import contextlib
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesh.config import DEFAULT
from mesh.exec import ExecCore
from mesh.metrics import Metrics
from mesh.protocol.messages import ProtocolViolation
from mesh.wire import Codec

SECRET = b"fuzz"
SLOW = 0.05  # CPU seconds (not wall: the machine is shared); far below a stall
PER_MESSAGE = 8  # table entries one message may add (a spec, its result, watchers...)

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(),
                    st.text(max_size=5), st.binary(max_size=8),
                    st.sampled_from(["k", "k2", "a", "b", "c"]))
shapes = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=24)
ops = st.sampled_from(["s", "x", "p", "d", "m", "t", "w", "a", "r", "k", "n", "st", "g"])
near_misses = st.builds(lambda op, rest: [op, *rest], ops, st.lists(shapes, max_size=8))
batches = st.lists(st.lists(st.one_of(near_misses, shapes), min_size=1, max_size=6),
                   min_size=1, max_size=6)


def _size(core: ExecCore) -> int:
    t = core.table
    return sum(len(x) for x in (t.tasks, t.results, t.ready, t.orphan_wants, t.orphaned,
                                t.watch, t.held, t.waiters, t.interest, t.specs, t.pending,
                                t.fns, t.to_peers, t.to_clients, t.local))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=batches, as_peer=st.booleans())
def test_sealed_random_exec_messages_never_crash_grow_or_stall_the_core(
        batches: list[list], as_peer: bool) -> None:
    sender = Codec(SECRET, DEFAULT.max_http_body)
    receiver = Codec(SECRET, DEFAULT.max_http_body)
    core = ExecCore("a", replicas=2, max_crashes=3, metrics=Metrics())
    core.set_view([("a", 1), ("b", 1), ("c", 1)], 0.0)
    core.open_session(1)
    fed = 0
    for batch in batches:
        msgs = receiver.open(sender.seal(batch))  # authenticated, then decoded with limits
        fed += len(msgs)
        t0 = time.thread_time()
        with contextlib.suppress(ProtocolViolation):
            if as_peer:
                core.peer_messages("b", msgs)
            else:
                core.client_messages(1, msgs)
        assert time.thread_time() - t0 < SLOW
        assert _size(core) <= PER_MESSAGE * fed
