"""What the simulator checks, while the run goes and at its end.

:class:`Observer` listens to every node's membership events and keeps, for each
live node, what it believes about every other node (one byte per pair), next to
the truth (which processes are up). From that it maintains, at O(1) per event:

* ``wrong``: how many (observer, member) beliefs disagree with the truth. A
  live member must be seen ``alive``; a crashed one ``dead``, ``left`` or not at
  all. ``wrong == 0`` is convergence.
* for every crashed node, how many survivors still think it is alive or
  suspect; the crash is *detected* when that reaches zero.
* every declaration of death about a node that is up, which is *false* unless
  the node or its accuser was under a fault (crashed and restarted, paused,
  slow, clogged, flapping, partitioned away) within ``window`` seconds before,
  or the network's loss was above :data:`LOSS_THRESHOLD` in that time, or the
  accuser's clock jumped forward within ``jump_window`` seconds before (see
  :meth:`Observer.clock_jumped`).

The invariants (:meth:`Observer.results`):

``no_errors``
    No exception escaped node code into the event loop or an HTTP handler.
``no_false_dead``
    See :data:`LOSS_THRESHOLD`.
``crashes_detected`` (liveness)
    Every node that crashed and stayed down is declared dead by every survivor
    within ``Config.detection_bound(N)`` of the later of its crash and the end
    of the fault phase.
``converges`` (liveness)
    Once faults stop, every live node sees exactly the live nodes as alive
    within ``Config.detection_bound(N) + Config.push_pull_period(N)``.

An invariant whose deadline lies beyond the end of the run and that has not
held yet is ``inconclusive``: the run was too short to tell. It does not fail
the run, and the report says so.

Modules: :mod:`sim.invariants.record` (the :class:`Invariant` verdict every
workload returns, and the view codes), :mod:`sim.invariants.membership` (the
:class:`Observer` of membership beliefs) and :mod:`sim.invariants.verdicts`
(the membership invariants judged from it). Workloads keep their own
invariants next to their work (``sim/workloads/``).
"""

from sim.invariants.membership import LOSS_THRESHOLD, Observer
from sim.invariants.record import ALIVE, DEAD, LEFT, SUSPECT, UNKNOWN, Invariant

__all__ = ["ALIVE", "DEAD", "LEFT", "LOSS_THRESHOLD", "SUSPECT", "UNKNOWN", "Invariant",
           "Observer"]
