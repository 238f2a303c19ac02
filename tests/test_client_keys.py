"""Client-side encoding, without a mesh: keys, dependencies, size limits."""

from __future__ import annotations

import pytest

from mesh._client_core import ClientCore
from mesh.protocol import payload as P


def inc(x: int) -> int:
    return x + 1


def core(max_body: int = 1 << 20) -> ClientCore:
    return ClientCore(["127.0.0.1:9"], None, max_body=max_body, connect_timeout=1.0,
                      reconnect_timeout=1.0)


def test_pure_keys_are_content_hashes_and_impure_keys_unique() -> None:
    c = core()
    a, b, d = c.build(inc, [((1,), {}), ((1,), {}), ((2,), {})], pure=True, retries=0)
    assert a.key == b.key != d.key
    assert a.key.startswith("inc-")
    assert a._state is b._state
    other = core().build(inc, [((1,), {})], pure=True, retries=0)[0]
    assert other.key == a.key  # the same call on another client: the same key
    x, y = c.build(inc, [((1,), {}), ((1,), {})], pure=False, retries=0)
    assert len({x.key, y.key, a.key}) == 3


def test_futures_in_arguments_become_dependencies() -> None:
    c = core()
    dep = c.build(inc, [((1,), {})], pure=True, retries=0)[0]
    task = c.build(sum, [(([dep, dep, 3],), {})], pure=True, retries=0)[0]
    spec = task._state.spec
    assert spec[1] == P.ARGS_PICKLE and spec[3] == [dep.key]
    args, _ = P.loads_args(spec[1], spec[2], {dep.key: 10})
    assert args == ([10, 10, 3],)


def test_arguments_larger_than_a_frame_are_refused_at_submit() -> None:
    with pytest.raises(ValueError, match="by reference"):
        core(max_body=10_000).build(inc, [((b"x" * 20_000,), {})], pure=True, retries=0)


def test_futures_of_another_client_are_refused() -> None:
    dep = core().build(inc, [((1,), {})], pure=True, retries=0)[0]
    with pytest.raises(ValueError, match="another client"):
        core().build(inc, [((dep,), {})], pure=True, retries=0)


@pytest.mark.parametrize("options, error, name", [
    ({"retries": "2"}, TypeError, "retries"),
    ({"retries": 1.0}, TypeError, "retries"),
    ({"retries": True}, TypeError, "retries"),
    ({"retries": -1}, ValueError, "retries"),
    ({"pure": "yes"}, TypeError, "pure"),
    ({"pure": None}, TypeError, "pure"),
    ({"key": 7}, TypeError, "key"),
    ({"key": ""}, ValueError, "key"),
    ({"replicas": "2"}, TypeError, "replicas"),
    ({"replicas": 2.0}, TypeError, "replicas"),
    ({"replicas": True}, TypeError, "replicas"),
    ({"replicas": 0}, ValueError, "replicas"),
    ({"replicas": 65}, ValueError, "replicas"),
])
def test_bad_submit_options_are_refused_when_called(options: dict, error: type,
                                                    name: str) -> None:
    c = core()
    call = {"pure": True, "retries": 0, **options}
    with pytest.raises(error, match=name):
        c.build(inc, [((1,), {})], **call)
    assert not c.proto.states  # nothing was queued


def test_replicas_travel_in_the_spec_and_none_leaves_them_to_the_entry_node() -> None:
    c = core()
    one, default = (c.build(inc, [((i,), {})], pure=True, retries=0, replicas=r)[0]
                    for i, r in ((1, 1), (2, None)))
    assert one._state.spec[5] == 1 and default._state.spec[5] == 0


def test_a_key_the_node_says_is_lost_is_submitted_again_while_held() -> None:
    from mesh._client_protocol import ClientProtocol
    from mesh.protocol.messages import Done, Lost, Submit, decode_client

    proto = ClientProtocol([("127.0.0.1", 9)], "c", 1 << 20)
    proto.connected({"window": 4}, ("127.0.0.1", 9), 0.0)
    spec = [b"fn", P.ARGS_MSGPACK, b"\x90", [], 0, 0, []]
    held, _ = proto.state("held", list(spec), [])
    gone, _ = proto.state("gone", list(spec), [])
    held.refs = gone.refs = 1
    proto.unsent.extend([held, gone])
    assert [decode_client(m).key for m in proto.outgoing()] == ["held", "gone"]
    proto.received([Done("held", P.OK_MSGPACK, b"\x01"), Done("gone", P.OK_MSGPACK, b"\x02")],
                   1.0)
    proto.unref(gone)  # released: a later Lost for it is not answered
    proto.outgoing()
    proto.received([Lost("held"), Lost("gone")], 2.0)
    again = [decode_client(m) for m in proto.outgoing()]
    assert again == [Submit("held", *spec)]
    assert held.value() == 1  # the delivered result stays; a second Done is ignored
