"""The exec core while nodes' views differ (a crash not yet seen by all, a
partition healing), found by the simulator's ``tasks`` campaign:

* a result whose holders change before it is confirmed waits for the new
  holders' acknowledgements (campaign seed 578: a target that had died was
  counted as done while its successor held nothing);
* a holder keeps every subscriber a coordinator's store names, even one
  that left its own view, until its recheck (``tests/test_exec_sim.py``
  seed 0: dropping it let another subscriber's release free the only copy
  of a ``replicas=1`` result a dependent still needed)."""

from __future__ import annotations

import msgpack

from mesh.config import DEFAULT
from mesh.protocol import payload as P
from mesh.protocol.messages import Store, Unsubscribe, encode
from tests.test_exec_core import Router, spec


def _key_and_successor(r: Router, names: list[str]) -> tuple[str, str, str, str]:
    """A key none of whose holders is the entry node ``a``, before and after
    its backup leaves: (key, owner, backup, successor)."""
    for i in range(1000):
        key = f"k{i}"
        owner, backup = r.cores["a"].ring.pref(key)
        if "a" in (owner, backup):
            continue
        rest = [n for n in names if n != backup]
        r2 = Router(rest)
        newp = r2.cores["a"].ring.pref(key)
        if newp[0] == owner and newp[1] != "a":
            return key, owner, backup, newp[1]
    raise AssertionError("no such key")


def test_a_result_whose_target_dies_unconfirmed_waits_for_the_targets_successor() -> None:
    names = ["a", "b", "c", "d", "e"]
    r = Router(names)
    key, owner, backup, successor = _key_and_successor(r, names)
    r.submit("a", key, spec(20, 22))
    r.down.add(backup)  # it dies before it acknowledges the store
    r.run(owner)
    assert key not in r.delivered("a")
    r.down.add(successor)  # the hand-over to the backup's successor is lost at first
    r.view([n for n in names if n != backup])
    st = r.cores[owner].results[key]
    assert not st.confirmed, "confirmed while the backup's successor holds nothing"
    assert key not in r.delivered("a")
    assert st.targets == [owner, successor]
    r.down.discard(successor)
    for now in (1.0, 2.0):  # unacknowledged stores go again at the next tick
        r.cores[owner].tick(now)
        r.deliver()
    assert key in r.cores[successor].results
    assert r.cores[owner].results[key].confirmed
    assert r.delivered("a")[key] == (P.OK_MSGPACK, 42)


def test_a_store_naming_a_subscriber_outside_the_holders_view_keeps_it_until_the_recheck(
        ) -> None:
    r = Router(["a", "b", "c", "d"])
    c = r.cores["c"]
    c.set_view([(m, 1) for m in ("b", "c", "d")], 0.0)  # c has not seen "a" come back
    while c.rebalancing():
        c.rebalance_step(7)
    store = Store("k", P.OK_MSGPACK, msgpack.packb(1), ["c"], ["a", "d"], "b", True, 1)
    c.peer_messages("b", [encode(store)])
    c.peer_messages("d", [encode(Unsubscribe("k", "d"))])
    assert c.results["k"].subs == {"a"}, "the only copy went with another's release"
    c.tick(0.0)
    c.tick(DEFAULT.subscription_recheck + 1.0)
    assert "k" in c.table.orphaned  # "a" is still not in c's view at the recheck
    c.tick(DEFAULT.subscription_recheck + DEFAULT.orphan_grace + 2.0)
    assert "k" not in c.results
