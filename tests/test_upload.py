"""The node's upload table (:mod:`mesh.store._upload`) driven directly, and
the client's choice of which arguments to scatter."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesh._client_upload import prepare, quick_size
from mesh.protocol.messages import (
    ProtocolViolation,
    Scatter,
    Scattered,
    decode_client,
    decode_client_reply,
    decode_upload,
    encode,
)
from mesh.store import loads
from mesh.store._upload import Accept, Closed, Discard, Landed, Offered, Refuse, Uploads

MAX_VALUE, MAX_VALUES, MAX_BYTES = 1000, 3, 2500


def _uploads() -> Uploads:
    return Uploads("n1", max_value=MAX_VALUE, max_values=MAX_VALUES, max_bytes=MAX_BYTES)


def test_an_offer_larger_than_the_node_can_hold_is_refused_naming_size_node_and_limit() -> None:
    up = _uploads()
    (eff,) = up.handle(Offered(1, "k", MAX_VALUE + 1))
    assert type(eff) is Refuse
    assert "'k' is 1001 bytes, more than node 'n1' can hold (1000 bytes" in eff.reason
    assert up.bytes == 0 and up.values == 0 and up.refused == 1


@pytest.mark.parametrize("n", [0, -5])
def test_an_offer_of_no_bytes_is_refused(n: int) -> None:
    (eff,) = _uploads().handle(Offered(1, "k", n))
    assert type(eff) is Refuse and "at least 1" in eff.reason


def test_a_session_that_closes_mid_upload_has_what_arrived_discarded() -> None:
    up = _uploads()
    assert up.handle(Offered(1, "a", 10)) == [Accept(1, "a")]
    assert up.handle(Offered(1, "b", 20)) == [Accept(1, "b")]
    assert up.handle(Offered(2, "a", 10)) == [Accept(2, "a")]
    assert up.handle(Closed(1)) == [Discard(1, ("a", "b"))]
    assert up.bytes == 10 and up.values == 1
    assert up.handle(Landed(1, "a")) == []  # a late landing of a closed session is nothing
    assert up.handle(Landed(2, "a")) == [] and up.bytes == 0 and up.values == 0


def test_the_same_key_offered_again_joins_the_upload_in_flight() -> None:
    up = _uploads()
    up.handle(Offered(1, "a", 10))
    assert up.handle(Offered(1, "a", 10)) == [Accept(1, "a")]
    assert up.bytes == 10 and up.values == 1


events = st.lists(st.one_of(
    st.builds(Offered, st.integers(1, 3), st.sampled_from("abcde"), st.integers(-1, 1200)),
    st.builds(Landed, st.integers(1, 3), st.sampled_from("abcde")),
    st.builds(Closed, st.integers(1, 3))), max_size=60)


@settings(max_examples=300, deadline=None)
@given(events)
def test_reservations_match_a_plain_model_and_stay_within_the_limits(evs: list) -> None:
    up = _uploads()
    model: dict[int, dict[str, int]] = {}
    for ev in evs:
        effects = up.handle(ev)
        if type(ev) is Offered:
            held = model.get(ev.sid, {})
            if ev.key in held:
                assert effects == [Accept(ev.sid, ev.key)]
                continue
            total = sum(sum(h.values()) for h in model.values())
            ok = (1 <= ev.nbytes <= MAX_VALUE and len(held) < MAX_VALUES
                  and total + ev.nbytes <= MAX_BYTES)
            assert type(effects[0]) is (Accept if ok else Refuse)
            if ok:
                model.setdefault(ev.sid, {})[ev.key] = ev.nbytes
        elif type(ev) is Landed:
            assert effects == []
            model.get(ev.sid, {}).pop(ev.key, None)
            if ev.sid in model and not model[ev.sid]:
                del model[ev.sid]
        else:
            gone = model.pop(ev.sid, {})
            assert effects == ([Discard(ev.sid, tuple(sorted(gone)))] if gone else [])
        assert up.sessions == model
        assert up.bytes == sum(sum(h.values()) for h in model.values()) <= MAX_BYTES
        assert all(len(h) <= MAX_VALUES for h in model.values())


def test_upload_messages_are_checked_field_by_field() -> None:
    assert decode_upload(encode(Scatter("k", b"", 2))) == Scatter("k", b"", 2)
    assert decode_client_reply(encode(Scattered("k", "no room"))) == Scattered("k", "no room")
    for bad in (["sc", 1, b"", 0], ["sc", "k", b"", -1], ["sc", "k", b"", 65], ["sc", "k"],
                ["sd", "k", 5]):
        with pytest.raises(ProtocolViolation):
            (decode_client_reply if bad[0] == "sd" else decode_upload)(bad)
    with pytest.raises(ProtocolViolation):  # only inside an offer, never a plain message
        decode_client(encode(Scatter("k", b"", 0)))


def test_a_value_is_keyed_by_its_content_and_sent_as_views_of_its_own_buffers() -> None:
    a = np.arange(100_000, dtype=np.float64)
    one = prepare(a, key=None, hash=True, client_id="c", replicas=0)
    two = prepare(a.copy(), key=None, hash=True, client_id="c", replicas=0)
    assert one.key == two.key and one.key.startswith("ndarray-")
    assert prepare(a + 1, key=None, hash=True, client_id="c", replicas=0).key != one.key
    assert prepare(a, key=None, hash=False, client_id="c", replicas=0).key != one.key
    (buf,) = one.value.buffers
    assert np.shares_memory(np.frombuffer(buf, dtype=np.float64), a)  # no copy
    assert (loads(one.value.header, one.value.buffers) == a).all()


def test_only_large_arguments_are_found_worth_scattering() -> None:
    assert quick_size(5) == quick_size(None) == 0
    assert quick_size(np.ones(1000)) == 8000
    assert quick_size(b"x" * 5000) == 5000
    assert quick_size([1, 2, 3]) < 1000
    assert quick_size({"a": [np.ones(1000)]}) > 8000  # two levels deep


def test_a_source_that_offers_again_after_its_channel_broke_is_taken_up_after_a_stall() -> None:
    import asyncio
    from dataclasses import replace

    from mesh.store._channel import Outbound
    from tests.test_dataplane_fetch import _Net, _store, _value

    async def main() -> None:
        net = _Net()
        arr, value = _value()
        value = replace(value, ident=b"i" * 16)  # named when it was made
        await net.offer("a", _store("k", value))
        await net.pump("a", limit=3)
        net.outs["a"] = Outbound()  # the link broke: its senders went with it
        await net.offer("a", _store("k", value))  # the coordinator sends its store again
        await net.pump("a")
        assert net.delivered == []  # the offer in use has no sender left: it stalls
        net.rt.t = 6.0
        await net.inbound.tick()
        for _ in range(10):  # the switch runs as a task
            await asyncio.sleep(0)
        await net.pump("a")
        assert len(net.delivered) == 2  # each offer's message, once the value is whole
        for _, msg in net.delivered:
            assert np.array_equal(loads(msg.payload.header, msg.payload.buffers), arr)
        assert net.chunks_sent["a"] == -(-value.nbytes // (1 << 16))  # the 3 kept, not resent
    asyncio.run(main())
