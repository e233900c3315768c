"""Errors a user can cause, and how their one-line messages write an exception and a shape.

The CLI prints a :class:`UserError`'s message as one stderr line and exits with 2.
"""
import logging
from typing import ContextManager, Iterable, Optional

from .collector import SharedSwitch


class UserError(Exception):
    """Bad input from the user: one sentence saying what is wrong and what to do."""


#: torch loggers that print a multi-line traceback for a failure graphcost reports in one line
#: (fake-tensor shape checks; symbolic shapes, dynamo and export while capturing a graph)
TORCH_CAPTURE_LOGGERS = ("torch._subclasses.fake_tensor", "torch.fx.experimental.symbolic_shapes",
                         "torch._dynamo", "torch.export", "torch._export")


def _silence() -> list:
    loggers = [logging.getLogger(name) for name in TORCH_CAPTURE_LOGGERS]
    levels = [(logger, logger.level) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    return levels


def _restore(levels: list) -> None:
    for logger, level in levels:
        logger.setLevel(level)


#: :func:`quiet_torch_logs`' switch: the first block to open silences, the last to close restores
_QUIET = SharedSwitch(_silence, _restore)


def quiet_torch_logs() -> ContextManager[None]:
    """Silence torch's own logging of failures while a model is captured, then restore it. Blocks may nest and
    overlap (threads too): the first silences, the last restores, so work that captures many times (a sweep's
    search) opens one block around all (each ``setLevel`` clears every logger's cache, torch has hundreds).

    >>> logger = logging.getLogger("torch._dynamo")
    >>> before = logger.level
    >>> with quiet_torch_logs():
    ...     with quiet_torch_logs():
    ...         inside = logger.level
    ...     still = logger.level
    >>> inside == still == logging.CRITICAL, logger.level == before
    (True, True)
    """
    return _QUIET()


def first_line(exc: BaseException, empty: Optional[str] = None) -> str:
    """The first line of an exception's message (``empty``, by default its type name, when it has
    none): what a one-line error quotes of a failure elsewhere.

    >>> first_line(ValueError("bad shape\\n  at layer 3")), first_line(KeyError()), first_line(KeyError(), "")
    ('bad shape', 'KeyError', '')
    """
    return (str(exc).strip().splitlines() or [type(exc).__name__ if empty is None else empty])[0]


def shape_text(shape: Iterable[int]) -> str:
    """A shape as messages and titles write it: ``1x3x224x224`` (``()`` for a scalar).

    >>> shape_text((1, 3, 360, 480)), shape_text(())
    ('1x3x360x480', '()')
    """
    return "x".join(str(int(d)) for d in shape) or "()"
