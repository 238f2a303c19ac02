"""A client is told a large result is done (``REMOTE``) without its bytes
moving to its entry node; the value moves once, when the client fetches it
(``result()``), as Dask's client gathers from workers. On the sans-IO core."""

from __future__ import annotations

import msgpack

from mesh.protocol import payload as P
from mesh.protocol.messages import Done, Fetch, Lost, encode
from tests.test_exec_core import spec
from tests.test_exec_locality import BIG, router, run_all


def owned_by(r, owner: str, prefix: str) -> str:
    return next(f"{prefix}{i}" for i in range(10_000)
                if owner in r.cores["a"].ring.pref(f"{prefix}{i}")[:1]
                and "a" not in r.cores["a"].ring.pref(f"{prefix}{i}"))


def done_msgs(r, entry: str, key: str) -> list[Done]:
    return [m for m in r.client_msgs[entry] if isinstance(m, Done) and m.key == key]


def test_a_large_result_is_done_for_the_client_while_its_bytes_stay_on_its_holders() -> None:
    r = router(["a", "b", "c"])
    r.fetch_remote = False
    key = owned_by(r, "b", "big")
    r.submit("a", key, spec(0))
    run_all(r, "b", {key: "x" * (5 * BIG)})
    (done,) = done_msgs(r, "a", key)
    assert done.kind == P.REMOTE and msgpack.unpackb(done.payload)[0] >= 5 * BIG
    entry = r.cores["a"]
    assert key not in entry.results and key not in entry.core.table.pending
    entry.client_messages(1, [encode(Fetch(key))])
    r.deliver()
    got = done_msgs(r, "a", key)[-1]
    assert got.kind == P.OK_MSGPACK and msgpack.unpackb(got.payload) == "x" * (5 * BIG)
    assert entry.core.table.sessions[1].inflight == 0  # the fetch's credit came back


def test_a_small_result_still_comes_with_its_done() -> None:
    r = router(["a", "b", "c"])
    r.fetch_remote = False
    key = owned_by(r, "b", "small")
    r.submit("a", key, spec(0))
    run_all(r, "b", {key: "x" * (BIG // 2)})
    (done,) = done_msgs(r, "a", key)
    assert done.kind == P.OK_MSGPACK


def test_a_fetch_of_a_key_the_client_does_not_hold_fails_it_by_name() -> None:
    r = router(["a", "b"])
    r.cores["a"].open_session(1)
    r.cores["a"].client_messages(1, [encode(Fetch("nobody-holds-this"))])
    r.deliver()
    (done,) = done_msgs(r, "a", "nobody-holds-this")
    assert done.kind == P.FAILED and b"does not hold" in done.payload


def test_a_dependent_task_on_the_entry_still_fetches_a_value_its_client_was_told_is_remote(
        ) -> None:
    r = router(["a", "b", "c"])
    r.fetch_remote = False
    big = owned_by(r, "b", "big")
    r.submit("a", big, spec(0))
    run_all(r, "b", {big: "x" * (BIG // 2)})  # small: its dependent runs where it is owned
    use = next(f"use{i}" for i in range(10_000) if r.cores["a"].ring.pref(f"use{i}")[0] == "a")
    r.submit("a", use, spec(1, deps=[big]))
    assert run_all(r, "a", {}) == [use]
    assert r.delivered("a")[use] == (P.OK_MSGPACK, 1 + BIG // 2)


def test_a_client_fetching_a_value_whose_every_copy_died_is_told_to_resubmit_it() -> None:
    r = router(["a", "b", "c", "d"])
    r.fetch_remote = False
    key = owned_by(r, "b", "big")
    holders = list(r.cores["a"].ring.pref(key))
    r.submit("a", key, spec(0))
    run_all(r, holders[0], {key: "x" * (5 * BIG)})
    assert done_msgs(r, "a", key)[0].kind == P.REMOTE
    for h in holders:
        r.down.add(h)
    r.view(sorted({"a", "b", "c", "d"} - set(holders)))
    r.cores["a"].client_messages(1, [encode(Fetch(key))])
    r.deliver()
    for now in (1.0, 2.0, 3.0):  # unanswered for two ticks: nobody holds it
        r.cores["a"].tick(now)
        r.deliver()
    assert any(isinstance(m, Lost) and m.key == key for m in r.client_msgs["a"])
