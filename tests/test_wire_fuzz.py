"""hypothesis over the gossip and push-pull decoders, fed through the real
codec: random shapes, sealed with the cluster secret (so they pass
authentication, as an insider's would), opened and handed to the sans-IO
membership core. Whatever arrives: only ``WireError`` escapes, the table
stays within ``max_members``, no incarnation passes ``max_incarnation + 1``,
and no single message takes more than a few milliseconds."""

from __future__ import annotations

import contextlib
import random
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesh.config import Config
from mesh.errors import WireError
from mesh.gossip import Membership
from mesh.wire import Codec

CONFIG = Config().with_(max_members=64)
SECRET = b"fuzz"
SLOW = 0.05  # CPU seconds (not wall: the machine is shared); far below a stall

ints = st.one_of(st.integers(-3, 12), st.integers(0, 2**64 - 1), st.sampled_from(
    [2**62, 2**62 + 1, 2**63 - 1, 2**63, -1, 10**6]))
names = st.one_of(st.sampled_from(["a", "b", "c", "d"]), st.text(max_size=8))
scalars = st.one_of(ints, names, st.none(), st.booleans(), st.floats(allow_nan=True),
                    st.binary(max_size=16))
metas = st.one_of(
    st.dictionaries(st.sampled_from(["workers", "queue", "x"]), scalars, max_size=3),
    scalars,
)
hosts = st.sampled_from(["127.0.0.1", "::1", "", "h" * 300])
ports = st.one_of(st.integers(1, 65535), ints)


def message() -> st.SearchStrategy[list]:
    kind = st.integers(0, 9)
    return st.one_of(
        st.tuples(kind, ints, names).map(list),
        st.tuples(kind, ints, names, hosts, ports).map(list),
        st.tuples(st.just(5), ints, names, hosts, ports, metas).map(list),
        st.tuples(st.sampled_from([6, 7]), ints, names, names).map(list),
        st.lists(scalars, max_size=7),
    )


rows = st.tuples(names, hosts, ports, ints, st.integers(-1, 5), metas).map(list)


def core() -> Membership:
    return Membership("a", ("127.0.0.1", 7001), CONFIG, random.Random(1), now=0.0)


def _check(m: Membership) -> None:
    members = m.members()
    assert len(members) <= CONFIG.max_members
    assert all(x.incarnation <= CONFIG.max_incarnation + 1 for x in members)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(message(), min_size=0, max_size=6), min_size=1, max_size=5))
def test_sealed_random_datagrams_never_crash_grow_or_stall_the_core(bodies: list) -> None:
    tx = Codec(SECRET, CONFIG.max_datagram * 8, purpose="datagram")
    rx = Codec(SECRET, CONFIG.max_datagram * 8, purpose="datagram")
    m = core()
    for i, body in enumerate(bodies):
        frame = tx.seal(body)
        t0 = time.process_time()
        with contextlib.suppress(WireError):
            m.receive(rx.open(frame), ("127.0.0.1", 7002), float(i))
        assert time.process_time() - t0 < SLOW
        m.tick(float(i) + 0.5)
        _check(m)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.lists(rows, max_size=80), st.lists(scalars, max_size=5), scalars),
       st.booleans())
def test_sealed_random_push_pull_tables_never_crash_grow_or_stall_the_core(
    state: object, bootstrap: bool,
) -> None:
    tx, rx = Codec(SECRET, 1 << 24), Codec(SECRET, 1 << 24)
    m = core()
    request = rx.open(tx.seal({"state": state}))
    t0 = time.process_time()
    with contextlib.suppress(WireError):
        m.merge_remote(request["state"], 1.0, bootstrap=bootstrap)
    assert time.process_time() - t0 < SLOW
    m.tick(2.0)
    _check(m)
