"""Errors a user can cause, and how their one-line messages write an exception and a shape.

The CLI prints a :class:`UserError`'s message as one stderr line and exits with 2.
"""
import contextlib
import logging
from typing import Iterable, Optional


class UserError(Exception):
    """Bad input from the user: one sentence saying what is wrong and what to do."""


#: torch loggers that print a multi-line traceback for a failure graphcost reports in one line
#: (fake-tensor shape checks; symbolic shapes, dynamo and export while capturing a graph)
TORCH_CAPTURE_LOGGERS = ("torch._subclasses.fake_tensor", "torch.fx.experimental.symbolic_shapes",
                         "torch._dynamo", "torch.export", "torch._export")


@contextlib.contextmanager
def quiet_torch_logs():
    """Silence torch's own logging of failures while a model is captured, then restore it."""
    loggers = [logging.getLogger(name) for name in TORCH_CAPTURE_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


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
