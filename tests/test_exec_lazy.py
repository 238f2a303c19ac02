"""Peer messages nothing waits on (a release's fan-out to a result's holders)
ride on the next frame to their peer instead of costing a frame of their own."""

from __future__ import annotations

import asyncio

from test_exec_core import Router, spec

from mesh.exec._effects import ToPeer
from mesh.exec._outbox import Outbox
from mesh.protocol.messages import Release, Unsubscribe, encode


def _owned_by(r: Router, owner: str) -> str:
    return next(f"k{i}" for i in range(100) if r.cores["a"].ring.pref(f"k{i}")[0] == owner)


def test_a_release_fan_out_from_the_owner_is_not_urgent() -> None:
    r = Router(["a", "b"])
    key = _owned_by(r, "b")
    r.submit("a", key, spec(1, 2))
    r.run("b")
    assert r.delivered("a")[key][1] == 3
    effects = r.cores["a"].client_messages(1, [encode(Release(key))])
    to_b = [e for e in effects if isinstance(e, ToPeer)]
    assert [(e.dest, e.urgent) for e in to_b] == [("b", True)]  # the entry's own unsubscribe
    back = r.cores["b"].peer_messages("a", [encode(m) for m in to_b[0].msgs])
    assert [(e.dest, e.urgent, [type(m) for m in e.msgs]) for e in back] == [
        ("a", False, [Unsubscribe])]
    r.cores["b"].effects.clear()
    r.cores["a"].peer_messages("b", [encode(m) for m in back[0].msgs])
    assert key not in r.cores["a"].results and key not in r.cores["b"].results


def test_an_urgent_message_to_the_same_peer_makes_the_batch_urgent() -> None:
    r = Router(["a", "b"])
    t = r.cores["b"].table
    t.send_later("a", "later")
    t.send("a", "now")
    t.send_later("c", "later")
    effects = r.cores["b"].core._effects()
    assert [(e.dest, e.msgs, e.urgent) for e in effects] == [
        ("a", ["later", "now"], True), ("c", ["later"], False)]


def test_an_outbox_holds_later_messages_until_the_next_push_in_order() -> None:
    async def main() -> None:
        box = Outbox()
        armed: list = []

        def arm(callback):  # type: ignore[no-untyped-def]
            armed.append(callback)
            return object()

        box.push_later(["x1"], arm)
        assert not box.wake.is_set() and armed == [box.flush_later]
        box.push_later(["x2"], arm)
        assert len(armed) == 1  # one timer at a time
        box.push(["s"])
        assert box.wake.is_set()
        assert box.take_runs() == [(False, ["x1", "x2", "s"])]
        box.flush_later()  # the timer fires after the frame went: nothing to send
        assert box.later is None and not box.wake.is_set()
        box.push_later(["x3"], arm)
        assert len(armed) == 2
        box.flush_later()
        assert box.wake.is_set() and box.take_runs() == [(False, ["x3"])]

    asyncio.run(main())


def test_an_offer_neither_overtakes_nor_is_overtaken_by_core_messages() -> None:
    async def main() -> None:
        box = Outbox()
        box.push_later(["unsubscribe k"], lambda cb: object())
        box.push_control(["offer of k"])
        box.push(["ack j"])
        box.push_control(["credit"])
        assert box.take_runs() == [(False, ["unsubscribe k"]), (True, [["offer of k"]]),
                                   (False, ["ack j"]), (True, [["credit"]])]

    asyncio.run(main())
