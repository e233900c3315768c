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
from typing import Any, Callable, ContextManager, Iterator

class SharedSwitch:
    """A process-wide change that nested and overlapping blocks (threads too) share: the first block to open
    turns it on (``turn_on()``, whose return value is kept), the last to close turns it off (``turn_off(kept)``),
    exception or not.

    >>> state = []
    >>> switch = SharedSwitch(lambda: state.append("on") or "saved", lambda kept: state.append(kept))
    >>> with switch():
    ...     with switch():
    ...         pass
    >>> state
    ['on', 'saved']
    """

    def __init__(self, turn_on: Callable[[], Any], turn_off: Callable[[Any], None]) -> None:
        self._turn_on, self._turn_off = turn_on, turn_off
        self._lock = threading.Lock()
        self._open = 0
        self._kept: Any = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if not self._open:
                self._kept = self._turn_on()
            self._open += 1
        try:
            yield
        finally:
            with self._lock:
                self._open -= 1
                if not self._open:
                    self._turn_off(self._kept)


def _pause() -> bool:
    enabled = gc.isenabled()
    gc.disable()
    return enabled


def _resume(was_enabled: bool) -> None:
    if was_enabled:
        gc.enable()


_COLLECTOR = SharedSwitch(_pause, _resume)


def collector_paused() -> ContextManager[None]:
    """Inside the block the cycle collector does not run; as the block ends it is on again if it was before.

    Blocks may nest and overlap in threads: the first to open pauses, the last to close restores, exception
    or not (:class:`SharedSwitch`). Reference counting frees objects as ever; only cycles wait for the
    collector's next run.

    >>> import gc
    >>> with collector_paused():
    ...     with collector_paused():
    ...         inner = gc.isenabled()
    ...     still = gc.isenabled()
    >>> inner, still, gc.isenabled()
    (False, False, True)
    """
    return _COLLECTOR()
