"""The exec message records and their codecs: every record round-trips, and
whatever shape arrives, a decoder or a core raises nothing but
ProtocolViolation."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesh.exec import ExecCore
from mesh.metrics import Metrics
from mesh.protocol import messages as M
from mesh.protocol.messages import ProtocolViolation, encode

SPEC = [b"fn", 0, b"\x90", ["dep"], 1, 2, ["n1"]]
SAMPLES = {
    "client": [M.Submit("k", b"fn", 0, b"\x90", ["dep"], 2), M.Release("k"), M.Ping()],
    "client reply": [M.Done("k", 0, b"\x01"), M.Pong(), M.Members(["[::1]:7000"])],
    "peer": [M.Hold("k", SPEC, ["a"], ["a", "b"]), M.Want("k", "a"),
             M.Store("k", 0, b"v", ["a", "b"], ["a"], "a", False), M.Ack("k", "b"),
             M.Result("k", 0, b"v"), M.Confirm("k"), M.Unsubscribe("k", "a"), M.Need("k"),
             M.Steal(3, "b"), M.Grant("k", SPEC, ["a"], {"dep": [0, b"v"]}),
             M.Keep("k", SPEC, ["a"], "b"), M.Want("k", "a", True),
             M.Located("k", 0, 1 << 30, "b")],
}
DECODERS = {"client": M.decode_client, "client reply": M.decode_client_reply,
            "peer": M.decode_peer}


@pytest.mark.parametrize("channel", sorted(SAMPLES))
def test_every_record_round_trips_through_its_channel(channel: str) -> None:
    for msg in SAMPLES[channel]:
        assert DECODERS[channel](encode(msg)) == msg


def test_records_are_frozen_and_slotted() -> None:
    for msgs in SAMPLES.values():
        for msg in msgs:
            assert not hasattr(msg, "__dict__")
            for f in dataclasses.fields(msg):
                with pytest.raises(dataclasses.FrozenInstanceError):
                    setattr(msg, f.name, None)


@pytest.mark.parametrize("bad, why", [
    ({"op": "s"}, "non-empty array"),
    ([], "non-empty array"),
    (["zz"], "unknown"),
    ([["s"]], "unknown"),
    (["s", "k"], "fields"),
    (["s", 1, b"f", 0, b"", [], 0, 0, []], "bad key"),
    (["s", "k", b"f", 0, b"", [], "2", 0, []], "bad retries"),
    (["s", "k", b"f", 0, b"", [], -1, 0, []], "bad retries"),
    (["s", "k", b"f", 0, b"", [1], 0, 0, []], "bad deps"),
    (["s", "k", b"f", 0, b"", [], 0, -1, []], "bad replicas"),
    (["s", "k", b"f", 0, b"", [], 0, M.MAX_REPLICAS + 1, []], "bad replicas"),
    (["s", "k", b"f", 0, b"", [], 0, True, []], "bad replicas"),
    (["s", "k", b"f", 0, b"", [], 0, 0, "n1"], "bad workers"),
    (["s", "k", b"f", 0, b"", [], 0, 0, [""]], "bad workers"),
    (["s", "k", b"f", 0, b"", [], 0, 0, ["n" * (M.MAX_NAME + 1)]], "bad workers"),
    (["s", "k", b"f", 0, b"", [], 0, 0, ["n"] * (M.MAX_WORKERS + 1)], "bad workers"),
])
def test_an_ill_shaped_client_message_names_what_is_wrong(bad: object, why: str) -> None:
    with pytest.raises(ProtocolViolation, match=why):
        M.decode_client(bad)


def test_a_peer_message_that_is_a_map_is_a_protocol_violation() -> None:
    core = ExecCore("a", replicas=2, max_crashes=3, metrics=Metrics())
    with pytest.raises(ProtocolViolation, match="array"):
        core.peer_messages("b", [{"key": "k"}])
    core.open_session(1)
    with pytest.raises(ProtocolViolation, match="array"):
        core.client_messages(1, [{"key": "k"}])


scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**64, 2**64), st.floats(),
                    st.text(max_size=5), st.binary(max_size=5), st.sampled_from(["k", "a", "b"]))
shapes = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=20)
ops = st.sampled_from(["s", "x", "p", "d", "m", "t", "w", "a", "r", "k", "n", "st", "g"])
near_misses = st.builds(lambda op, rest: [op, *rest], ops, st.lists(shapes, max_size=8))
anything = st.one_of(shapes, near_misses)


@settings(max_examples=300, deadline=None)
@given(st.lists(anything, min_size=1, max_size=4))
def test_no_shape_crashes_the_decoders_or_a_core(msgs: list) -> None:
    for decode in DECODERS.values():
        for raw in msgs:
            with contextlib.suppress(ProtocolViolation):
                decode(raw)
    core = ExecCore("a", replicas=2, max_crashes=3, metrics=Metrics())
    core.set_view([("a", 1), ("b", 1)], 0.0)
    core.open_session(1)
    for feed in (lambda m: core.peer_messages("b", m), lambda m: core.client_messages(1, m)):
        with contextlib.suppress(ProtocolViolation):
            feed(msgs)
