"""Ctrl-C and SIGTERM held back around what must not be cut short (torch-free: the CLI uses it before any import).

``signals_deferred`` is used where a signal at the wrong moment leaves a mess instead of a clean stop: a pool's
worker start-up (:mod:`graphcost.runtime.executor`), and the CLI's import of a plugin command, which imports
torch (a Ctrl-C inside a C extension's initialisation aborts the process, SIGABRT, instead of ending it with
the CLI's one line).
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator, List

#: The signals that end a run: Ctrl-C and SIGTERM.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back while the block runs, then deliver the first one that arrived.

    Starting the pool's workers is not interruptible safely: a signal between a worker's fork and
    the pool recording it leaves a worker nobody stops (and whose join at exit never returns), and a
    worker forked with Python's Ctrl-C handler dies with a traceback if the group's Ctrl-C reaches it
    before its initializer ignores it. Inside this block the handler only records the signal (the
    workers inherit that harmless handler); the signal is raised again as the block ends. Outside the
    main thread (where handlers cannot be set) it does nothing.

    >>> import os
    >>> arrived = []
    >>> previous = signal.signal(signal.SIGTERM, lambda signum, frame: arrived.append("handled"))
    >>> with signals_deferred():
    ...     os.kill(os.getpid(), signal.SIGTERM)
    ...     held = list(arrived)
    >>> _ = signal.signal(signal.SIGTERM, previous)
    >>> held, arrived
    ([], ['handled'])
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: List[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: arrived.append(signum)) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if arrived:
            signal.raise_signal(arrived[0])
