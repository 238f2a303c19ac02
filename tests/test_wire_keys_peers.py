"""Which key seals to which peer (mesh.wire._keys_peers): the choice learned
from authenticated frames and advertisements, reordered by failures, and
resealing a frame under another of our keys."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesh.errors import WireError
from mesh.wire import Codec, KeyRing
from mesh.wire._keys_peers import PeerKeys, parse_key_ids

NEW, OLD, OTHER = b"new-secret", b"old-secret", b"someone-else"


class _Source:
    def __init__(self) -> None:
        self._rng = random.Random(7)

    def wall(self) -> float:
        return 1_700_000_000.0

    def token_bytes(self, n: int) -> bytes:
        return self._rng.randbytes(n)


def _kid(secret: bytes) -> bytes:
    return KeyRing(secret).key_ids[0]


def _keys(*secrets: bytes, max_peers: int = 4096) -> PeerKeys:
    return PeerKeys(KeyRing(list(secrets)), _Source(), max_peers=max_peers)


def test_a_peer_never_heard_from_gets_the_first_secret() -> None:
    keys = _keys(NEW, OLD)
    assert keys.choose(("10.0.0.1", 1)) == _kid(NEW)


def test_a_peer_that_advertises_only_old_gets_old_and_one_that_adds_new_gets_new() -> None:
    keys, peer = _keys(NEW, OLD), ("10.0.0.1", 1)
    keys.holds(peer, [_kid(OLD)])
    assert keys.choose(peer) == _kid(OLD)
    keys.holds(peer, [_kid(NEW), _kid(OLD)])  # it restarted with [new, old]
    assert keys.choose(peer) == _kid(NEW)
    keys.holds(peer, [_kid(OLD)])  # an advertisement replaces what we knew
    assert keys.choose(peer) == _kid(OLD)


def test_a_frame_heard_in_a_key_teaches_that_the_peer_holds_it() -> None:
    keys, peer = _keys(NEW, OLD), ("10.0.0.1", 1)
    keys.failed(peer, _kid(NEW))
    assert keys.choose(peer) == _kid(OLD)
    keys.heard(peer, _kid(NEW))
    assert keys.choose(peer) == _kid(NEW)


def test_a_failed_first_contact_moves_to_the_next_key_and_all_failed_starts_over() -> None:
    keys, peer = _keys(NEW, OLD), ("10.0.0.1", 1)
    keys.failed(peer, _kid(NEW))
    assert keys.choose(peer) == _kid(OLD)
    keys.failed(peer, _kid(OLD))  # both failed (the peer is down): from the top again
    assert keys.choose(peer) == _kid(NEW)
    keys.failed(peer, _kid(NEW))
    keys.answered(peer, _kid(OLD))  # old got through
    assert keys.choose(peer) == _kid(OLD)


def test_key_ids_we_do_not_hold_teach_nothing() -> None:
    keys, peer = _keys(NEW, OLD), ("10.0.0.1", 1)
    keys.heard(peer, _kid(OTHER))
    keys.failed(peer, _kid(OTHER))
    assert len(keys) == 0 and keys.choose(peer) == _kid(NEW)
    keys.holds(peer, [_kid(OTHER)])  # holds none of ours: our first, as for a stranger
    assert keys.choose(peer) == _kid(NEW)


def test_the_table_is_bounded_forgetting_the_least_recently_changed() -> None:
    keys = _keys(NEW, OLD, max_peers=3)
    for i in range(10):
        keys.holds(("h", i), [_kid(OLD)])
    assert len(keys) == 3
    assert keys.choose(("h", 0)) == _kid(NEW)  # forgotten: a stranger again
    assert keys.choose(("h", 9)) == _kid(OLD)


@pytest.mark.parametrize("raw", [None, 3, "", "zz", "abcd", ["abcd"], [b"abc"], [b"abcd"] * 17,
                                 "00112233," * 20])
def test_a_malformed_advertisement_is_ignored(raw: object) -> None:
    assert parse_key_ids(raw) is None


def test_advertisements_parse_from_metadata_and_from_handshakes() -> None:
    keys = _keys(NEW, OLD)
    assert parse_key_ids(keys.advertisement) == (_kid(NEW), _kid(OLD))
    assert parse_key_ids(keys.key_ids) == (_kid(NEW), _kid(OLD))


_SECRETS = [b"k0", b"k1", b"k2", b"k3"]
_events = st.lists(st.tuples(st.sampled_from(["heard", "holds", "failed", "answered"]),
                             st.integers(0, 2),  # peer
                             st.lists(st.sampled_from(_SECRETS), min_size=1, max_size=3)),
                   max_size=40)


@settings(max_examples=300, deadline=None)
@given(ours=st.lists(st.sampled_from(_SECRETS[:3]), min_size=1, max_size=3, unique=True),
       events=_events)
def test_the_choice_is_the_first_of_our_keys_the_peer_holds_that_has_not_failed(
        ours: list[bytes], events: list[tuple[str, int, list[bytes]]]) -> None:
    """Against a reference model: keys the peer holds (heard or advertised)
    and has not refused come first, then keys not refused, in our order."""
    keys = _keys(*ours)
    mine = keys.key_ids
    held: dict[int, set[bytes]] = {}
    failed: dict[int, set[bytes]] = {}
    for what, peer, secrets in events:
        kids = [_kid(s) for s in secrets]
        h, f = held.setdefault(peer, set()), failed.setdefault(peer, set())
        getattr(keys, what)(peer, kids if what == "holds" else kids[0])
        if what == "holds":
            held[peer], failed[peer] = set(kids), set()
        elif kids[0] in mine:
            if what == "heard":
                h.add(kids[0])
                f.discard(kids[0])
            elif what == "failed":
                f.add(kids[0])
            else:
                f.discard(kids[0])
        h, f = held[peer], failed[peer]
        if f.issuperset(mine):
            f.clear()
        expected = sorted(mine, key=lambda k: (k in f, k not in h, mine.index(k)))[0]
        assert keys.choose(peer) == expected
        assert keys.choose(peer) in mine


@settings(max_examples=300, deadline=None)
@given(ours=st.lists(st.sampled_from(_SECRETS), min_size=1, max_size=4, unique=True),
       theirs=st.lists(st.sampled_from(_SECRETS), min_size=1, max_size=4, unique=True))
def test_trying_keys_in_turn_reaches_a_shared_key_within_one_round(
        ours: list[bytes], theirs: list[bytes]) -> None:
    """A first contact with a peer that holds ``theirs``: each refusal marks
    the key failed; within len(ours) attempts a shared key gets through."""
    keys, peer = _keys(*ours), "peer"
    accepted = {_kid(s) for s in theirs}
    shared = [k for k in keys.key_ids if k in accepted]
    for _ in range(len(ours)):
        kid = keys.choose(peer)
        if kid in accepted:
            keys.answered(peer, kid)
            break
        keys.failed(peer, kid)
    else:
        assert not shared
        return
    assert kid == shared[0]  # the first shared key in our order


def test_a_resealed_frame_opens_only_with_the_key_it_was_resealed_for() -> None:
    src = _Source()
    keys = PeerKeys(KeyRing([NEW, OLD]), src)
    sender = Codec(KeyRing([NEW, OLD]), 4096, source=src)
    frame = sender.seal({"x": 1})
    assert frame[4:8] == _kid(NEW)
    old = keys.reseal(frame, _kid(OLD))
    assert old[4:8] == _kid(OLD) and old[8:20] != frame[8:20]
    assert Codec(OLD, 4096, source=src).open(old) == {"x": 1}
    with pytest.raises(WireError) as err:
        Codec(OLD, 4096, source=src).open(frame)
    assert err.value.reason == "unknown_key"
    # the envelope is the same: the same frame resealed is still one frame
    receiver = Codec([NEW, OLD], 4096, source=src)
    receiver.open(old)
    with pytest.raises(WireError) as err:
        receiver.open(frame)
    assert err.value.reason == "replay"


def test_a_resealed_stream_chunk_opens_under_the_new_key() -> None:
    src = _Source()
    keys = PeerKeys(KeyRing([NEW, OLD]), src)
    sender = Codec(KeyRing([NEW, OLD]), 1 << 20, source=src)
    data = bytes(range(256)) * 40
    frames = [keys.reseal(f, _kid(OLD)) for f in sender.seal_stream({"h": 1}, [data], 4096)]
    reader = Codec(OLD, 1 << 20, source=src).open_stream(frames[0], 1 << 20)
    for chunk in frames[1:]:
        reader.feed(chunk)
    assert reader.done and bytes(reader.buffers[0]) == data


def test_resealing_leaves_alone_what_is_not_ours_to_reseal() -> None:
    src = _Source()
    keys = PeerKeys(KeyRing([NEW, OLD]), src)
    frame = Codec(NEW, 4096, source=src).seal({"x": 1})
    assert keys.reseal(frame, _kid(OTHER)) is frame  # not one of our keys
    assert keys.reseal(frame, _kid(NEW)) is frame  # already sealed so
    assert keys.reseal(b"garbage", _kid(OLD)) == b"garbage"
    forged = frame[:-1] + bytes([frame[-1] ^ 1])
    assert keys.reseal(forged, _kid(OLD)) is forged  # the peer refuses it as before
    assert keys.seal_for("stranger", frame) is frame
