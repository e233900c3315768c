"""The cycle collector paused around work that allocates many objects and frees them by reference counts.

Capturing a model, building its graphs and building a model allocate thousands of nodes, records, modules
and dicts at once; each allocation burst starts the cycle collector, whose runs walk every young object alive
(half of building ItNet on the meta device; up to half a width-search probe). ``trace``, ``analyze`` and
``resolve.build_for_shapes`` run inside :func:`collector_paused`. Nothing such a block makes is garbage only through a cycle it
must free at once, so the collector can wait until the block ends.
"""
from __future__ import annotations

import contextlib
import gc
import threading
from typing import Any, Dict, Iterator

#: Blocks open (in any thread), and whether the collector was on when the first one opened.
_PAUSED: Dict[str, Any] = {"lock": threading.Lock(), "open": 0, "was_enabled": False}


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Inside the block the cycle collector does not run; as the block ends it is on again if it was before.

    Blocks may nest and overlap in threads: the first to open pauses, the last to close restores, exception
    or not. Reference counting frees objects as ever; only cycles wait for the collector's next run.

    >>> import gc
    >>> with collector_paused():
    ...     with collector_paused():
    ...         inner = gc.isenabled()
    ...     still = gc.isenabled()
    >>> inner, still, gc.isenabled()
    (False, False, True)
    """
    with _PAUSED["lock"]:
        if not _PAUSED["open"]:
            _PAUSED["was_enabled"] = gc.isenabled()
            gc.disable()
        _PAUSED["open"] += 1
    try:
        yield
    finally:
        with _PAUSED["lock"]:
            _PAUSED["open"] -= 1
            if not _PAUSED["open"] and _PAUSED["was_enabled"]:
                gc.enable()
