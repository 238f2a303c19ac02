"""hypothesis: the store against a plain reference model (budget, spill,
references, eviction order), and the store with its disk I/O finishing late
and in any order (freed while writing, read while reading)."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mesh.errors import OutOfStorage
from mesh.store import (
    CLIENT,
    TASK,
    DeleteSpill,
    Deliver,
    Get,
    Loaded,
    LocalStore,
    MemorySpillDir,
    Missing,
    Put,
    PutRefused,
    ReadBack,
    Release,
    Spilled,
    SpillFailed,
    Store,
    Value,
    WriteSpill,
)

KEYS = st.sampled_from("abcdefg")
HOLDERS = st.sampled_from([(CLIENT, "1"), (CLIENT, "2"), (TASK, "t")])
SIZES = st.integers(min_value=1, max_value=120)


def make(key: str, size: int) -> Value:
    return Value.of(b"", [bytes([ord(key)]) * size])


class Model:
    """The store's rules, written as plainly as possible."""

    def __init__(self, memory: int, disk: int) -> None:
        self.memory, self.disk = memory, disk
        self.size: dict[str, int] = {}
        self.holders: dict[str, set] = {}
        self.in_memory: list[str] = []  # least recently used first
        self.files: set[str] = set()

    def make_room(self) -> None:
        excess = sum(self.size[k] for k in self.in_memory) - self.memory
        for k in list(self.in_memory):
            if excess <= 0:
                break
            if k in self.files:
                self.in_memory.remove(k)
                excess -= self.size[k]
            elif sum(self.size[f] for f in self.files) + self.size[k] <= self.disk:
                self.files.add(k)
                self.in_memory.remove(k)
                excess -= self.size[k]

    def put(self, key: str, size: int, holder) -> bool:
        if key in self.size:
            self.holders[key].add(holder)
            return True
        if sum(self.size.values()) + size > self.memory + self.disk:
            return False
        self.size[key], self.holders[key] = size, {holder}
        self.in_memory.append(key)
        self.make_room()
        return True

    def adopt(self, key: str, size: int, holder) -> bool:
        if key in self.size or sum(self.size.values()) + size > self.memory + self.disk:
            return self.put(key, size, holder)
        self.size[key], self.holders[key] = size, {holder}
        self.in_memory.append(key)
        self.files.add(key)  # in memory and on disk: eviction drops it without a write
        self.make_room()
        return True

    def get(self, key: str) -> None:
        if key in self.in_memory:
            self.in_memory.remove(key)
        self.in_memory.append(key)
        self.make_room()

    def release(self, key: str, holder) -> None:
        self.holders[key].discard(holder)
        if not self.holders[key]:
            del self.size[key], self.holders[key]
            self.files.discard(key)
            if key in self.in_memory:
                self.in_memory.remove(key)
        self.make_room()  # a freed file may let a value over the budget spill


class StoreAgainstModel(RuleBasedStateMachine):
    @rule(memory=st.integers(0, 400), disk=st.integers(0, 600))
    @precondition(lambda self: not hasattr(self, "model"))
    def start(self, memory, disk):
        self.spill = MemorySpillDir()
        self.local = LocalStore(Store("n", "<mem>", memory_limit=memory, disk_limit=disk),
                                self.spill, lambda: 0.0)
        self.model = Model(memory, disk)

    @precondition(lambda self: hasattr(self, "model"))
    @rule(key=KEYS, size=SIZES, holder=HOLDERS)
    def put(self, key, size, holder):
        expect = self.model.put(key, size, holder)
        try:
            self.local.put(key, make(key, size), holder)
        except OutOfStorage:
            assert not expect
        else:
            assert expect

    @precondition(lambda self: hasattr(self, "model"))
    @rule(key=KEYS, size=SIZES, holder=HOLDERS)
    def adopt(self, key, size, holder):
        self.arrivals = getattr(self, "arrivals", 0) + 1  # each arrival has its own file
        name = f"in-{self.arrivals}"
        self.spill.write(name, make(key, self.model.size.get(key, size)))
        expect = self.model.adopt(key, size, holder)
        try:
            self.local.adopt(key, name, holder)
        except OutOfStorage:
            assert not expect
        else:
            assert expect

    @precondition(lambda self: hasattr(self, "model"))
    @rule(key=KEYS)
    def get(self, key):
        if key not in self.model.size:
            try:
                self.local.get(key)
            except KeyError:
                return
            raise AssertionError(f"{key} should be missing")
        self.model.get(key)
        v = self.local.get(key)
        assert v.same_bytes(make(key, self.model.size[key]))

    @precondition(lambda self: hasattr(self, "model"))
    @rule(key=KEYS, holder=HOLDERS)
    def release(self, key, holder):
        if key in self.model.size:
            self.model.release(key, holder)
        self.local.release(key, holder)

    @invariant()
    def same_as_model(self):
        if not hasattr(self, "model"):
            return
        m, s = self.model, self.local.store
        assert s.lru_order() == m.in_memory
        st_ = s.stats()
        assert st_.values == len(m.size)
        assert st_.memory_bytes == sum(m.size[k] for k in m.in_memory)
        assert st_.disk_bytes == sum(m.size[k] for k in m.files)
        assert len(self.spill.names()) == len(m.files)
        for k in m.size:
            assert s.holders(k) == m.holders[k]


TestStoreAgainstModel = StoreAgainstModel.TestCase
TestStoreAgainstModel.settings = settings(max_examples=150, stateful_step_count=40,
                                          deadline=None)


class StoreWithLateIO(RuleBasedStateMachine):
    """Writes and reads finish whenever the test says, in any order; some
    writes fail. Nothing leaks, every delivery has the right bytes, and the
    figures add up."""

    def __init__(self):
        super().__init__()
        self.store = Store("n", "<mem>", memory_limit=150, disk_limit=300)
        self.spill = MemorySpillDir()
        self.pending: list = []
        self.sizes: dict[str, int] = {}

    def apply(self, event):
        for eff in self.store.handle(event, 0.0):
            if isinstance(eff, (WriteSpill, ReadBack)):
                self.pending.append(eff)
            elif isinstance(eff, DeleteSpill):
                self.spill.delete(eff.name)
            elif isinstance(eff, Deliver):
                assert eff.value.same_bytes(make(eff.key, self.sizes[eff.key]))
            elif isinstance(eff, PutRefused):
                self.sizes.pop(eff.key, None)
            elif isinstance(eff, Missing):
                assert eff.key not in self.store

    @rule(key=KEYS, size=SIZES)
    def put(self, key, size):
        if key not in self.store:
            self.sizes[key] = size
        self.apply(Put(key, make(key, self.sizes[key]), (CLIENT, "1")))

    @rule(key=KEYS)
    def get(self, key):
        self.apply(Get(key, key))

    @rule(key=KEYS)
    def release(self, key):
        self.apply(Release(key, (CLIENT, "1")))

    @precondition(lambda self: self.pending)
    @rule(i=st.integers(0, 100), fail=st.booleans())
    def finish_io(self, i, fail):
        eff = self.pending.pop(i % len(self.pending))
        if isinstance(eff, WriteSpill):
            if fail:
                self.apply(SpillFailed(eff.key, eff.serial, "ENOSPC"))
            else:
                self.spill.write(eff.name, eff.value)
                self.apply(Spilled(eff.key, eff.serial))
        else:
            try:
                value = self.spill.read(eff.name)
            except FileNotFoundError:  # freed while reading: the store ignores it
                assert eff.key not in self.store or self.store.state(eff.key) != "loading"
                return
            self.apply(Loaded(eff.key, eff.serial, value))

    @invariant()
    def figures_add_up(self):
        st_ = self.store.stats()
        assert st_.memory_bytes >= 0 and st_.disk_bytes >= 0
        assert self.store.total_bytes <= self.store.memory_limit + self.store.disk_limit \
            or self.store.disk_limit < 300  # a failed write lowers the disk limit

    def teardown(self):
        for key in "abcdefg":
            self.apply(Release(key, (CLIENT, "1")))
        while self.pending:
            self.finish_io(0, False)
        st_ = self.store.stats()
        assert (st_.memory_bytes, st_.disk_bytes, st_.values) == (0, 0, 0)
        assert self.spill.names() == []


TestStoreWithLateIO = StoreWithLateIO.TestCase
TestStoreWithLateIO.settings = settings(max_examples=150, stateful_step_count=40,
                                        deadline=None)
