"""Large values that a crash cut off still reach whoever needs them; each
case was found by the simulator's ``data`` workload (``mesh sim --workload
data``, ``tests/test_sim_large_values.py``):

* a fetch whose source restarted, forgot its transfer or died is taken up
  again from a new offer, or given up when nobody needs it
  (``mesh.store._fetch.Inbound``); it waited for chunks that never came,
  holding its value (``data_freed``, seeds 1, 4 and 5 of ``mesh sim
  --workload data --nodes 6 --duration 100 --loss 0.05 --dup 0.02 --crash 1
  --restart 1 --partition 1 --pause 1``, faults until 25 s);
* a node whose client waits for a value that the node also asked to
  *locate* (for a task of its own) asks for the value itself when the
  holder answers with its location (``mesh.exec._locality``); its client
  waited forever (``data_resolve``, seeds 12, 22, 30, 32 and 33 of
  ``python -m sim.campaign --workload data --duration 90``);
* a node that runs a task for its owner (stolen, or placed by locality)
  and coordinates its result does not take a spec holder's ``Confirm`` for
  its own targets' acknowledgements (``mesh.exec._holder``): it marked the
  result confirmed without telling the subscribers, and a client waited
  forever (``data_resolve``, seed 17 of ``tests/test_sim_large_values.py``).
"""

from __future__ import annotations

import asyncio

import numpy as np

from mesh.protocol import payload as P
from mesh.protocol.messages import Confirm, encode
from mesh.store import loads
from mesh.store._channel import CANCEL, Outbound
from tests.test_dataplane_fetch import _Net, _store, _value
from tests.test_exec_core import spec
from tests.test_exec_locality import BIG, run_all, setup


def test_a_restarted_source_that_offers_again_is_taken_up_when_the_old_transfer_stalls(
        ) -> None:
    async def main() -> None:
        net = _Net()
        arr, value = _value()
        await net.offer("a", _store("k", value))
        await net.pump("a", limit=2)
        # "a" restarts (its senders are gone) before anyone saw it die, and
        # sends the message again: a new offer from the same source joins.
        net.outs["a"] = Outbound()
        await net.offer("a", _store("k", value))
        assert net.delivered == [] and len(net.inbound.fetches) == 1
        net.rt.t += 6.0  # past stall_after: the old transfer stalls
        await net.inbound.tick()
        await asyncio.sleep(0)  # the switch takes the new offer up in a task of its own
        await net.pump("a")
        assert [m.key for _, m in net.delivered] == ["k", "k"]
        got = net.delivered[0][1].payload
        assert np.array_equal(loads(got.header, got.buffers), arr)
        assert not net.inbound.fetches
    asyncio.run(main())


def test_a_fetch_nobody_needs_whose_source_died_is_given_up_and_its_source_told() -> None:
    async def main() -> None:
        net = _Net()
        _, value = _value()
        await net.offer("a", _store("k", value))
        await net.pump("a", limit=2)
        net.inbound.source_gone("a")  # no alternate: it waits for a new offer
        assert net.inbound.drop_idle(lambda key: True) == []  # still needed: kept
        assert net.inbound.wanted("k")
        assert net.inbound.drop_idle(lambda key: False) == ["k"]
        assert not net.inbound.wanted("k") and net.delivered == []
        assert net.control["a"][-1][0] == CANCEL
    asyncio.run(main())


def test_a_stalled_fetch_is_given_up_only_after_two_stalls_without_a_chunk() -> None:
    async def main() -> None:
        net = _Net()
        _, value = _value()
        await net.offer("a", _store("k", value))
        await net.pump("a", limit=2)
        net.outs["a"] = Outbound()  # the sender forgot the transfer; the source lives
        net.rt.t += 6.0
        await net.inbound.tick()
        assert net.inbound.drop_idle(lambda key: False) == []  # one stall: wait
        net.rt.t += 6.0
        await net.inbound.tick()
        assert net.inbound.drop_idle(lambda key: False) == ["k"]
    asyncio.run(main())


def test_a_client_on_a_node_that_located_a_value_gets_the_value_itself() -> None:
    r, big, use, holder = setup(5 * BIG)  # c owns use: it located big on b, and gave use to b
    assert r.cores["c"].tasks[use].thief == holder
    r.submit("c", big, spec(0, replicas=1))  # now a client on c wants big itself
    assert r.delivered("c").get(big) == (P.OK_MSGPACK, "x" * (5 * BIG))


def test_a_confirm_from_a_spec_holder_leaves_a_runners_result_to_its_own_targets() -> None:
    r, _, use, runner = setup(5 * BIG)  # c owns use and gave it to b, where big is
    r.down.add("c")  # the owner, a target of use, dies before it holds the result
    assert run_all(r, runner, {}) == [use]
    assert not r.cores[runner].results[use].confirmed
    r.cores[runner].peer_messages("a", [encode(Confirm(use))])  # a spec holder's word
    r.deliver()
    assert not r.cores[runner].results[use].confirmed and use not in r.delivered("a")
    r.view(["a", "b"])  # c leaves the view: the runner confirms and tells the subscribers
    assert r.delivered("a")[use] == (P.OK_MSGPACK, 1 + 5 * BIG)
