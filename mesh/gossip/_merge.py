"""A push-pull table merged in slices, so that no table stalls a node's loop.

A table of thousands of members costs milliseconds per hundred rows to check
and apply (and the layers above hear one event per member that changed). A
table larger than ``Config.push_pull_merge_slice`` rows is therefore held as a
:class:`PendingMerge` by :class:`~mesh.gossip.Membership` and worked off one
slice per :meth:`~mesh.gossip.Membership.tick`, which the driver runs on the
next loop turn (``next_deadline`` asks for it at once). Sans-IO: the slice's
time is the ``now`` of that tick.

The rule that keeps a sliced merge equal to an unsliced one:

1. **Check, then apply.** Every row is checked first (in slices), and nothing
   is applied until all of them passed: a bad row anywhere drops the whole
   table, as an unsliced merge does (reason in :attr:`MergeReport.error`).
2. **The merge happens when the check ends.** From that moment the table
   counts as merged: its rows are applied slice by slice, but before anything
   else touches a member (an ``alive``, ``suspect`` or ``dead`` about it, a
   probe's suspicion, an expired suspicion, our own leave or metadata change),
   that member's pending rows are applied first (:meth:`PendingMerge.take_name`).
   So each member sees the same sequence of updates as if the whole table had
   been applied at that moment, and a member learned from one slice is never
   rolled back by a later one: each row still goes through the incarnation and
   status precedence of the handlers, against what is held when it applies.
3. **One table at a time, in arrival order.** A table that
   arrives while one is pending waits behind it (its check starts when the
   earlier table is fully applied), so two tables merge in the order they
   came, as unsliced merges would. At most ``Config.push_pull_merges_held``
   tables wait; more are shed (counted ``gossip_push_pull_shed``): push-pull
   is periodic anti-entropy, and the next exchange brings the same news.

``tests/test_gossip_merge_slices.py`` checks the rule against an unsliced
reference under interleaved gossip, with hypothesis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mesh.config import Config
from mesh.errors import WireError
from mesh.gossip._events import MemberEvent
from mesh.gossip._state import Address, Member, Status

Entry = tuple[str, Address, int, Status, dict[str, Any]]
"""A checked row: name, address, incarnation, status, metadata."""

CheckRow = Callable[[Any, dict[str, Member], Config], "Entry | None"]


NAMED = 4
"""Member changes a merge's log line spells out (the rest are counted)."""


class MergeReport:
    """What one push-pull merge did: one log line, not one per member."""

    __slots__ = ("bootstrap", "changes", "error", "named", "rows", "slices", "src")

    def __init__(self, rows: int, src: Address | None, bootstrap: bool) -> None:
        self.rows = rows
        self.src = src
        self.bootstrap = bootstrap
        self.slices = 0
        self.error: WireError | None = None
        self.changes: dict[str, int] = {}
        """Member events the merge raised, by kind word (``join``, ``dead``...)."""
        self.named: list[str] = []
        """The first few of them, spelled out in the log line."""

    def count(self, events: list[MemberEvent]) -> None:
        for e in events:
            word = e.kind.value
            self.changes[word] = self.changes.get(word, 0) + 1
            if len(self.named) < NAMED:
                m = e.member
                self.named.append(f"member {m.name} {word} at {m.address} "
                                  f"(incarnation {m.incarnation})")

    @property
    def news(self) -> int:
        """Members the merge changed."""
        return sum(self.changes.values())

    def describe(self) -> str:
        where = f" from {self.src[0]}:{self.src[1]}" if self.src else ""
        kind = "join answer" if self.bootstrap else "push-pull table"
        if self.error is not None:
            return (f"dropped a {kind}{where} of {self.rows} rows after {self.slices} "
                    f"slices: {self.error}")
        what = ", ".join(f"{n} {k}" for k, n in sorted(self.changes.items())) or "no news"
        more = "; ".join(self.named) + ("; ..." if self.news > len(self.named) else "")
        return (f"merged a {kind}{where}: {self.rows} row{'s' if self.rows != 1 else ''}, {what} "
                f"({self.slices} slice{'s' if self.slices != 1 else ''})" + (": " + more
                                                                             if more else ""))


class PendingMerge:
    """One table: checked in slices, then applied in slices (see the module)."""

    __slots__ = ("_entries", "_next", "_pos", "_where", "applying", "quiet",
                 "report", "state")

    def __init__(self, state: list[Any], quiet: bool, report: MergeReport) -> None:
        self.state = state
        self.quiet = quiet
        self.report = report
        self.applying = False
        """True once every row passed its check: the table counts as merged."""
        self._pos = 0
        self._entries: list[Entry | None] = []
        self._where: dict[str, list[int]] = {}
        self._next = 0

    def check(self, known: dict[str, Member], limits: Config, step: int,
              check_row: CheckRow) -> None:
        """Check the next ``step`` rows. Raises :class:`WireError` on a bad
        one (the table is then dropped whole; nothing of it was applied).
        Rows that say exactly what ``known`` holds are left out."""
        state, entries = self.state, self._entries
        end = min(len(state), self._pos + step)
        for i in range(self._pos, end):
            entry = check_row(state[i], known, limits)
            if entry is not None:
                entries.append(entry)
        self._pos = end
        self.report.slices += 1
        if end == len(state):
            self.state = []  # the raw table is no longer needed
            self.load([])

    def load(self, more: list[Entry]) -> None:
        """Take checked rows (``more``, after those :meth:`check` kept),
        index them by name, and start applying."""
        entries, where = self._entries, self._where
        entries.extend(more)
        for i, entry in enumerate(entries):
            assert entry is not None
            got = where.get(entry[0])
            if got is None:
                where[entry[0]] = [i]
            else:  # a name twice in one table: both rows apply, in order
                got.append(i)
        self.applying = True

    @property
    def done(self) -> bool:
        return self.applying and self._next >= len(self._entries)

    def take(self, step: int) -> list[Entry]:
        """The next ``step`` rows to apply (fewer if some were taken early)."""
        entries, where = self._entries, self._where
        end = min(len(entries), self._next + step)
        out = []
        for i in range(self._next, end):
            entry = entries[i]
            if entry is None:
                continue
            entries[i] = None
            idx = where.pop(entry[0])
            if len(idx) > 1:  # a later row of the same name stays pending
                idx.remove(i)
                where[entry[0]] = idx
            out.append(entry)
        self._next = end
        self.report.slices += 1
        return out

    def take_name(self, name: str) -> list[Entry]:
        """Every pending row about ``name``, in table order, taken now."""
        idx = self._where.pop(name, None)
        if idx is None:
            return []
        out = []
        for i in idx:
            entry = self._entries[i]
            self._entries[i] = None
            if entry is not None:
                out.append(entry)
        return out


class Merges:
    """The push-pull tables of one node that are not fully merged yet, oldest
    first, and the reports of those that finished (for the driver's log).

    A component of :class:`~mesh.gossip.Membership`, which gives it its table,
    its event list and ``apply_row(entry, quiet, now)``, which runs one row
    through its handlers.
    """

    __slots__ = ("_apply_row", "_check_row", "_events", "_jobs", "_known", "_running", "checked",
                 "config", "due", "metrics", "reports")

    def __init__(self, config: Config, known: dict[str, Member], metrics: Any,
                 events: list[MemberEvent], check_row: CheckRow,
                 apply_row: Callable[[Entry, bool, float], None]) -> None:
        self.config = config
        self.metrics = metrics
        self._known = known
        self._events = events
        self._check_row = check_row
        self._apply_row = apply_row
        self.checked = 0
        """Tables whose every row passed its check: merged, by the rule above."""
        self._running: PendingMerge | None = None  # the table whose rows apply now
        self._jobs: list[PendingMerge] = []
        self.reports: list[MergeReport] = []
        self.due = float("inf")
        """When the next slice is due (the ``now`` that queued it): at once."""

    def __bool__(self) -> bool:
        return bool(self._jobs)

    @property
    def active(self) -> bool:
        """True while rows of a table are applied (their events are ``merged``)."""
        return self._running is not None

    @property
    def phase(self) -> str:
        """``""`` when no table is pending, else ``"checking"`` or
        ``"applying"`` (the phase of the oldest)."""
        if not self._jobs:
            return ""
        return "applying" if self._jobs[0].applying else "checking"

    @property
    def applying(self) -> PendingMerge | None:
        """The table being applied (merged, with rows still pending), if any."""
        jobs = self._jobs
        return jobs[0] if jobs and jobs[0].applying else None

    def add(self, state: list[Any], now: float, quiet: bool, report: MergeReport) -> None:
        """Merge ``state`` (its shape and size already checked): at once if it
        fits one slice (raising :class:`WireError` if a row is bad), else in
        slices from the next :meth:`step`; behind any table pending."""
        job = PendingMerge(state, quiet, report)
        step = max(1, self.config.push_pull_merge_slice)
        if not self._jobs and len(state) <= step:
            job.check(self._known, self.config, len(state) or 1, self._check_row)
            self.checked += 1
            self._apply(job, job.take(len(state)), now)
            report.slices = 1
            self.reports.append(report)
            return
        if len(self._jobs) >= self.config.push_pull_merges_held:
            self.metrics.inc("gossip_push_pull_shed")
            return
        self._jobs.append(job)
        self.due = min(self.due, now)

    def add_checked(self, entries: list[Entry], now: float, bootstrap: bool) -> None:
        """Merge rows already checked (by ``parse_state`` against an empty
        table), for a table many nodes receive alike: the simulator's warm
        start checks its table once for the whole process. Applied in slices
        from the next :meth:`step` (or by :meth:`finish`)."""
        quiet = bootstrap and len(entries) > self.config.push_pull_scale_threshold
        job = PendingMerge([], quiet, MergeReport(len(entries), None, bootstrap))
        job.load(entries)
        self.checked += 1
        self._jobs.append(job)
        self.due = min(self.due, now)

    def step(self, now: float) -> None:
        """One slice of work on the oldest table: check or apply ``step`` rows."""
        job = self._jobs[0]
        step = max(1, self.config.push_pull_merge_slice)
        if not job.applying:
            try:
                job.check(self._known, self.config, step, self._check_row)
            except WireError as exc:
                job.report.error = exc
                self._finish()
            else:
                self.checked += job.applying
        else:
            self._apply(job, job.take(step), now)
        if self._jobs and self._jobs[0].done:
            self._finish()
        self.due = now if self._jobs else float("inf")

    def settle(self, name: str, now: float) -> None:
        """Apply the pending rows about ``name`` of the table being applied
        (before anything else changes that member; see the module's rule)."""
        job = self.applying
        if job is not None and job is not self._running:  # its own rows go in table order
            entries = job.take_name(name)
            if entries:
                self._apply(job, entries, now)

    def finish(self, now: float) -> None:
        """Work every pending table off now (for a caller outside a loop, such
        as the simulator's warm start)."""
        while self._jobs:
            self.step(now)

    def _finish(self) -> None:
        job = self._jobs.pop(0)
        self.reports.append(job.report)

    def _apply(self, job: PendingMerge, entries: list[Entry], now: float) -> None:
        events, outer = self._events, self._running
        start, self._running = len(events), job
        try:
            for entry in entries:
                self._apply_row(entry, job.quiet, now)
        finally:
            self._running = outer
        if start < len(events):
            job.report.count(events[start:])

    def drain(self) -> list[MergeReport]:
        """Merges finished or dropped since the last call, oldest first (one
        log line each)."""
        reports, self.reports = self.reports, []
        return reports
