"""``GET /metrics``: the node's figures in Prometheus' text format.

A custom collector reads the node's state when Prometheus scrapes: nothing
is sampled on a timer. Names start with ``mesh_``, use base units (bytes,
seconds), counters end in ``_total``, and labels take only a few fixed values
(member status, task state, drop reason). Each node exposes its own figures;
Prometheus adds the ``instance`` label.

Two names are a contract: ``mesh_members{status}`` (a gauge over ``alive``,
``suspect``, ``dead`` and ``left``) and ``mesh_tasks_completed_total`` (tasks
this node ran to a result, failures included).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from mesh.ops._snapshot import STATUSES, exec_service, local_figures

if TYPE_CHECKING:
    from mesh.node import Node

__all__ = ["CONTENT_TYPE", "NodeCollector", "render"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

_DROPPED = "wire_dropped_"
_REASONS = ("malformed", "oversized", "truncated", "unauthenticated", "version")
"""Reasons of :class:`~mesh.errors.WireError`, exported at 0 before the
first drop so that rate() works from the first scrape."""
_NAMED = {
    "gossip_probes": ("mesh_gossip_probes", "Probes this node started."),
    "gossip_probes_failed": ("mesh_gossip_probe_failures",
                             "Probes that got no ack, direct or indirect."),
    "exec_tasks_taken": ("mesh_tasks_stolen", "Queued tasks this node stole from busier peers."),
    "exec_tasks_given": ("mesh_tasks_given", "Queued tasks idle peers stole from this node."),
    "exec_peer_bytes_sent": ("mesh_peer_sent_bytes",
                             "Bytes this node sent to peers: task specs, results and replicas."),
}
"""Counters of :class:`mesh.metrics.Metrics` under names of their own; every
other counter ``x`` is exported as ``mesh_x_total``."""


def _clean(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


class NodeCollector:
    """Reads one node's membership, exec state and counters at scrape time."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        node = self.node
        counts = dict.fromkeys(STATUSES, 0)
        for m in node.members():
            counts[m["status"]] = counts.get(m["status"], 0) + 1
        members = GaugeMetricFamily("mesh_members", "Members this node knows, by status.",
                                    labels=["status"])
        for status, n in counts.items():
            members.add_metric([status], n)
        yield members
        yield from self._exec(node)
        yield from self._counters(node)

    def _exec(self, node: Node) -> Iterator[Metric]:
        f = local_figures(node)
        service = exec_service(node)
        share = node.ring_shares().get(node.name, 0.0)
        yield _gauge("mesh_ring_share", "This node's share of the key space (0-1).", share)
        yield _gauge("mesh_workers", "Worker processes on this node.", f["workers"])
        tasks = GaugeMetricFamily("mesh_tasks", "Tasks whose spec this node holds, by state.",
                                  labels=["state"])
        for state in ("held", "waiting", "ready", "running", "stolen"):
            tasks.add_metric([state], f["states"].get(state, 0))
        yield tasks
        yield _counter("mesh_tasks_completed",
                       "Tasks this node ran to a result (errors included).", f["completed"])
        runs = 0 if service is None else service.tasklog.finished_total
        yield _counter("mesh_task_runs_finished",
                       "Task runs whose outcome came back from a worker here.", runs)
        yield _gauge("mesh_task_runs_per_second",
                     "Task runs finished per second over the last 10 s.", f["rate"])
        yield _gauge("mesh_results_held", "Task results stored on this node.", f["values"])
        yield _gauge("mesh_result_bytes", "Bytes of task results stored on this node.",
                     f["bytes"])
        yield _gauge("mesh_store_memory_bytes", "Bytes of values in this node's memory.",
                     f.get("memory_bytes", 0))
        yield _gauge("mesh_store_disk_bytes", "Bytes of values in this node's spill directory.",
                     f.get("disk_bytes", 0))
        yield _gauge("mesh_store_values", "Values in this node's store.", f.get("stored_values", 0))
        sessions = 0 if service is None or service.core is None else len(service.core.sessions)
        yield _gauge("mesh_client_sessions", "Clients connected to this node.", sessions)

    def _counters(self, node: Node) -> Iterator[Metric]:
        snapshot = node.metrics.snapshot()
        dropped = CounterMetricFamily(
            "mesh_dropped_frames", "Frames (datagrams, HTTP bodies, channel frames) dropped, "
            "by reason.", labels=["reason"])
        reasons = dict.fromkeys(_REASONS, 0)
        for name, value in snapshot.items():
            if name.startswith(_DROPPED):
                reasons[name[len(_DROPPED):]] = value
        for reason, value in reasons.items():
            dropped.add_metric([reason], value)
        yield dropped
        for key, (metric, doc) in _NAMED.items():
            yield _counter(metric, doc, snapshot.get(key, 0))
        for name, value in snapshot.items():
            if name.startswith(_DROPPED) or name in _NAMED:
                continue
            yield _counter(f"mesh_{_clean(name)}", f"Node counter {name}.", value)


def _gauge(name: str, doc: str, value: Any) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: Any) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def render(registry: CollectorRegistry) -> bytes:
    """The exposition text of ``registry``, built now."""
    return generate_latest(registry)


def registry_for(node: Node) -> CollectorRegistry:
    """A registry of this node's collector alone (not the process-global
    one: several nodes may share a process, as in tests)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(node))
    return registry
