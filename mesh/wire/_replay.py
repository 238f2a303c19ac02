"""Replay protection: which frames of which sender a receiver has seen.

Every sealed frame carries, inside its encrypted part, the sender's id, the
*epoch* of the sender's life (its wall clock in microseconds when it started,
so a restarted sender's epoch is higher), a per-sender counter and the
sender's wall-clock timestamp. A :class:`ReplayGuard` drops:

* ``stale`` -- a frame of an older life of its sender (lower epoch), or whose
  timestamp is further than ``window`` seconds from what the skew seen from
  that sender predicts; a sender we know nothing of must be within
  ``max_skew`` seconds of our clock.
* ``replay`` -- a counter already seen in the sender's current life, or one
  too far behind the highest counter seen to tell (``counter_window``).

State exists only for senders whose frames authenticated, at most
``max_senders`` of them (least recently heard are forgotten first). A
forgotten sender's frames are judged by their timestamps alone, so a frame can
be replayed to a receiver that lost its state at most within ``max_skew`` of
being sent. Nothing here reads a clock: ``now_us`` is passed in.
"""

from __future__ import annotations

from collections import OrderedDict

from mesh.errors import WireError

__all__ = ["ReplayGuard"]


class _Peer:
    __slots__ = ("bits", "epoch", "skew", "top")

    def __init__(self, epoch: int, counter: int, skew: int) -> None:
        self.epoch = epoch
        self.top = counter
        self.bits = 1  # bit i set: counter (top - i) was seen
        self.skew = skew


class ReplayGuard:
    """Per-sender replay windows of one receiver (one per purpose).

    ``window`` and ``max_skew`` are seconds; ``counter_window`` is how far
    out of order (in counter values) a sender's frames may arrive.
    """

    __slots__ = ("_peers", "counter_window", "max_senders", "max_skew_us", "window_us")

    def __init__(self, *, window: float, max_skew: float, counter_window: int,
                 max_senders: int) -> None:
        self.window_us = int(window * 1e6)
        self.max_skew_us = int(max_skew * 1e6)
        self.counter_window = counter_window
        self.max_senders = max_senders
        self._peers: OrderedDict[bytes, _Peer] = OrderedDict()

    def __len__(self) -> int:
        return len(self._peers)

    def check(self, sender: bytes, epoch: int, counter: int, stamp_us: int, now_us: int) -> None:
        """Accept (and remember) one authenticated frame, or raise
        :class:`WireError` with reason ``stale`` or ``replay``."""
        age = now_us - stamp_us
        peer = self._peers.get(sender)
        if peer is None or epoch > peer.epoch:
            if abs(age) > self.max_skew_us and (
                peer is None or abs(age - peer.skew) > self.window_us
            ):
                raise WireError("stale", f"timestamp {age / 1e6:+.1f}s off our clock")
            if peer is None:
                self._remember(sender, _Peer(epoch, counter, age))
            else:  # a new life of a sender we know
                peer.epoch, peer.top, peer.bits, peer.skew = epoch, counter, 1, age
                self._peers.move_to_end(sender)
            return
        if epoch < peer.epoch:
            raise WireError("stale", "a frame of an earlier life of its sender")
        if age - peer.skew > self.window_us:
            raise WireError("stale", f"{(age - peer.skew) / 1e6:.1f}s older than the window")
        if counter > peer.top:
            shift = counter - peer.top
            if shift >= self.counter_window:
                peer.bits = 1
            else:
                bits = (peer.bits << shift) | 1
                if bits.bit_length() > 2 * self.counter_window:  # trim now and then, not always
                    bits &= (1 << self.counter_window) - 1
                peer.bits = bits
            peer.top = counter
            if age < peer.skew:
                peer.skew = age  # the least delay seen: the best estimate of the offset
        else:
            back = peer.top - counter
            if back >= self.counter_window:
                raise WireError("replay", f"counter {back} behind the newest: too old to tell")
            bit = 1 << back
            if peer.bits & bit:
                raise WireError("replay", "a frame already seen")
            peer.bits |= bit
        self._peers.move_to_end(sender)

    def peek(self, sender: bytes, epoch: int, counter: int, stamp_us: int, now_us: int) -> None:
        """Raise what :meth:`check` would, remembering nothing."""
        peer = self._peers.get(sender)
        if peer is None:
            self.check_new(stamp_us, now_us)
            return
        saved = (peer.epoch, peer.top, peer.bits, peer.skew)
        try:
            self.check(sender, epoch, counter, stamp_us, now_us)
        finally:
            peer.epoch, peer.top, peer.bits, peer.skew = saved

    def check_new(self, stamp_us: int, now_us: int) -> None:
        if abs(now_us - stamp_us) > self.max_skew_us:
            raise WireError("stale", f"timestamp {(now_us - stamp_us) / 1e6:+.1f}s off our clock")

    def _remember(self, sender: bytes, peer: _Peer) -> None:
        self._peers[sender] = peer
        if len(self._peers) > self.max_senders:
            self._peers.popitem(last=False)
