"""Actors: stateful objects on the mesh whose state survives their host.

``client.actor(cls, *args, name=None, durable=True, replicas=None, **kwargs)``
gives an :class:`ActorHandle`; its methods return mesh futures. The design
(host by placement, call log with caller sequence numbers, state
replication, failover) is in ``docs/actors.md``; the sans-IO core is
:mod:`mesh.actors._core`, its driver :mod:`mesh.actors._service`.
"""

from mesh.actors._handle import ActorHandle, get, make, set_client_factory, who_has

__all__ = ["ActorHandle", "get", "make", "set_client_factory", "who_has"]
