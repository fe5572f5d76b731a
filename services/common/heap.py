"""The garbage collector and a long-lived event loop.

CPython's full (generation 2) collection walks every container object alive, on whatever thread
allocated last, so in a service it is a pause of the event loop that grows with the heap: measured
in the fire-lateness benchmark, 84–711 ms (on a loaded machine) over the ~130,000 objects a
scheduler with 1,000 tasks holds, which made its p99 fire lateness 100–660 ms against bare
APScheduler's few milliseconds.

Most of those objects live as long as the process (modules, classes, the configuration) or as long
as a leadership (each task's schedule and APScheduler job). `gc.freeze()` moves everything alive
into a permanent generation the collector no longer walks. Frozen objects are still freed by
reference counting as usual; only garbage cycles among them stay (a removed task's state, if it
held a cycle), a small price for a loop that is never paused for the whole heap. So each service
freezes once it is built, and the scheduler again each time a snapshot of the tasks is applied.

The start-up freeze follows one full collection (the garbage of start-up should not live forever),
itself a pause of ~50–120 ms with PostgreSQL's driver loaded: the first server a process starts
(services/common/server.py) takes it before it accepts any call, so no caller ever waits for it.
"""

from __future__ import annotations

import gc

_startup_frozen = False


def freeze_startup_heap() -> None:
    """Once per process, when it is built and before it serves: the garbage made while starting is
    collected, what is left is frozen."""
    global _startup_frozen
    if _startup_frozen:
        return
    _startup_frozen = True
    gc.collect()
    gc.freeze()


def freeze_heap() -> None:
    """Freezes what is alive now without a collection (a collection is the pause this avoids)."""
    gc.freeze()
