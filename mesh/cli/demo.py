"""The job ``mesh up --nodes 3 --demo`` runs on the mesh it started: 2,000
tasks and a sum over their futures (it prints how many tasks each node ran and
the result), then the seed's word count on a text it writes (it prints the
top words)."""

from __future__ import annotations

import collections
import operator
import sys
import tempfile
from pathlib import Path

from mesh.addresses import parse_address
from mesh.client import AsyncClient
from mesh.config import DEFAULT
from mesh.node import MEMBERS_PATH
from mesh.protocol.framing import STATS_PATH
from mesh.realtime import RealRuntime
from mesh.runtime import Unreachable
from mesh.wire import Codec

DEMO_TASKS = 2000
DEMO_TIMEOUT = 60.0


def square(x: int) -> int:
    """The demo task (importable, so workers load it by reference)."""
    return x * x


DEMO_TEXT = (
    "people scale python with spark dask or ray and all three hang on one head "
    "when the head dies the work dies mesh has no head every node joins by gossip "
    "and consistent hashing owns every task and every partition of the data "
)


def pair_one(word: str) -> tuple[str, int]:
    return (word, 1)


def second(kv: tuple[str, int]) -> int:
    return kv[1]


async def word_count(client: AsyncClient, say: object) -> bool:
    """The seed's word count on a text written here; True if it equals a
    ``collections.Counter`` of the same words."""
    with tempfile.TemporaryDirectory(prefix="mesh-demo-") as tmp:
        path = Path(tmp) / "text.txt"
        words = DEMO_TEXT.split()
        path.write_text("\n".join(" ".join(words[i % 7:] + words[:i % 5])
                                  for i in range(4000)) + "\n")
        expected = collections.Counter(path.read_text().split())
        counts = (client.read_text(str(path), blocksize="64KiB")
                  .flat_map(str.split).map(pair_one).reduce_by_key(operator.add))
        top = await counts.top(5, key=second)
        got = dict(await counts.collect())
    say(f"demo: word count of {sum(expected.values())} words in "  # type: ignore[operator]
        f"{counts.npartitions} partitions: " + ", ".join(f"{w} {c}" for w, c in top))
    return got == expected


async def _stats(runtime: object, addr: tuple[str, int], codec: Codec) -> dict:
    reply = await runtime.request(addr, STATS_PATH, codec.seal({}), 2.0)  # type: ignore[attr-defined]
    return codec.open(reply)


async def _alive(runtime: object, addr: tuple[str, int], codec: Codec) -> int:
    """How many members the node at ``addr`` sees alive with workers."""
    reply = await runtime.request(addr, MEMBERS_PATH, codec.seal({}), 2.0)  # type: ignore[attr-defined]
    members = codec.open(reply)["members"]
    return sum(1 for m in members if m["status"] == "alive" and m["meta"].get("workers"))


async def run_demo(addresses: list[str], secret: bytes | None, out: object = sys.stdout) -> int:
    """Run the demo job against ``addresses``; returns an exit code."""
    def say(text: str) -> None:
        print(text, file=out, flush=True)  # type: ignore[arg-type]

    # The nodes are starting as we connect: give them the same 15 s as below.
    async with AsyncClient(addresses, secret=secret, connect_timeout=15.0,
                           reconnect_timeout=15.0) as client:
        runtime = RealRuntime()
        codec = Codec(secret, DEFAULT.max_http_body)
        addrs = [parse_address(a) for a in addresses]
        try:
            # Wait until every node runs its exec service and sees all the
            # others, so the job spreads over the whole mesh.
            deadline = runtime.now() + 15.0
            while True:
                try:
                    for a in addrs:
                        await _stats(runtime, a, codec)
                        if await _alive(runtime, a, codec) < len(addrs):
                            raise Unreachable("not converged yet")
                    break
                except Unreachable:
                    if runtime.now() > deadline:
                        raise
                    await runtime.sleep(0.1)
            before = {a: (await _stats(runtime, a, codec)) for a in addrs}
            start = runtime.now()
            futs = client.map(square, range(DEMO_TASKS), pure=False)
            total = await client.submit(sum, futs, pure=False)
            elapsed = runtime.now() - start
            expected = sum(x * x for x in range(DEMO_TASKS))
            say(f"demo: {DEMO_TASKS} tasks square(x) for x in 0..{DEMO_TASKS - 1}, "
                f"then sum() of their futures, on {len(addrs)} nodes")
            for a in addrs:
                after = await _stats(runtime, a, codec)
                ran = after["completed"] - before[a]["completed"]
                workers = after["workers"]
                plural = "" if workers == 1 else "s"
                say(f"  {after['node']}: {ran} tasks ({workers} worker{plural})")
            say(f"demo: result {total} (expected {expected}) in {elapsed:.2f} s")
            counted = await word_count(client, say)
            return 0 if total == expected and counted else 1
        finally:
            await runtime.close()
