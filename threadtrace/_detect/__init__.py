"""The detectors: deadlocks, stuck threads, primitives held by finished threads, lock order.

The primitives call :mod:`.hooks` on their slow paths (a wait begins and
ends, a thread ends, a lock is taken while others are held); the watchdog
thread (:mod:`.watchdog`) looks at what they recorded; each finding is a
:class:`~.problems.Problem`, told once.
"""

# Each installs its component in the runtime (runtime.detect, runtime.lock_order),
# which the primitives use from their first acquisition on.
from . import lockorder, state  # noqa: F401
