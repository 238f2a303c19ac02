"""Futures as actor call arguments and actor results as mesh values, on the
sans-IO cores (four nodes of real exec and actor cores, messages delivered
in order): a call waits for its arguments' values, holds back its caller's
later calls and no other caller's, fails with a failed input's error; a
published call result is stored on its key's nodes and released with it."""

from __future__ import annotations

import pytest

from mesh.actors._core import CLIENT_RECORDS
from mesh.protocol import payload as P
from mesh.protocol.messages import ActorCall, ActorPublish, ProtocolViolation, Release, encode
from tests.test_actors_core import ACTOR, START, ActorMesh


class Fut:
    """Pickles as a dependency, as a mesh future does."""
    _mesh_future_ = True

    def __init__(self, key: str) -> None:
        self.key = key


def mesh() -> ActorMesh:
    m = ActorMesh()
    for node in m.nodes.values():
        node.exec.add_handlers(dict.fromkeys(CLIENT_RECORDS, node.actors.client_message), {})
    return m


def call(m: ActorMesh, caller: str, seq: int, *args: object) -> str:
    akind, payload, deps = P.dumps_args(args, {})
    key = f"{ACTOR}/{caller}/{seq}"
    m.client([encode(ActorCall(key, ACTOR, caller, seq, 1, "incr", akind, payload, True,
                               [d.key for d in deps]))])
    return key


def publish(m: ActorMesh, key: str, kind: int, payload: bytes) -> None:
    m.client([encode(ActorPublish(key, kind, payload))])


def value(m: ActorMesh, key: str) -> object:
    return P.loads_value(*m.done[key])


def holders(m: ActorMesh, key: str) -> list[str]:
    return sorted(n for n in m.alive if key in m.nodes[n].exec.table.results)


def test_a_call_waits_for_its_argument_and_holds_back_only_its_own_caller() -> None:
    m = mesh()
    dep = "actor-other/x/1"
    first = call(m, "h", 1, Fut(dep))
    behind = call(m, "h", 2)
    other = call(m, "g", 1, 1000)
    m.settle()
    assert first not in m.done and behind not in m.done
    assert value(m, other) == START + 1000  # another caller goes on
    publish(m, dep, *P.dumps_value(7))  # the input's value reaches the mesh
    m.settle()
    assert value(m, first) == START + 1007
    assert value(m, behind) == START + 1008  # after it, in its caller's order
    host = next(n for n in m.alive if ACTOR in m.nodes[n].actors.host.hosted)
    assert not m.nodes[host].exec.table.interest  # the host let go of the value


def test_a_failed_input_fails_the_call_without_running_it() -> None:
    m = mesh()
    dep = "actor-other/x/2"
    publish(m, dep, *P.dumps_error(ValueError("bad input")))
    m.settle()
    failed = call(m, "h", 1, Fut(dep))
    after = call(m, "h", 2)
    m.settle()
    kind, payload = m.done[failed]
    assert kind == P.ERROR and "bad input" in str(P.load_error(payload))
    assert value(m, after) == START + 1  # the failed call changed nothing


def test_a_published_result_is_stored_on_its_keys_nodes_and_released_with_it() -> None:
    m = mesh()
    key = "actor-other/y/1"
    publish(m, key, *P.dumps_value(42))
    m.settle()
    assert len(holders(m, key)) == 2  # R = 2, as a task's result
    entry = m.nodes[m.entry].exec.table
    assert 1 in entry.held[key]
    m.client([encode(Release(key))])
    m.settle()
    assert holders(m, key) == [] and key not in entry.held


def test_only_actor_call_results_may_be_published() -> None:
    m = mesh()
    with pytest.raises(ProtocolViolation, match="only actor call results"):
        publish(m, "inc-0123", *P.dumps_value(1))
