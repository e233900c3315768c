"""Errors a user can cause. The CLI prints their message as one stderr line and exits with 2."""
import contextlib
import logging


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
