"""graphcost: loop-keeping computational graphs, cost passes and crossbar mapping for PyTorch.

>>> import torch, graphcost
>>> a = graphcost.analyze(torch.nn.Conv2d(3, 8, 3, padding=1), (1, 3, 32, 32))
>>> a.macs  # MACs, not FLOPs
221184

The public names are imported on first use (PEP 562), so ``import graphcost`` and the command
line's ``--help`` / ``models`` / ``--version`` start without importing torch.
"""
import importlib
import importlib.util

from .errors import UserError

__version__ = "0.1.0"

#: public name -> the module defining it, imported when the name is first read
_EXPORTS = {
    "Call": ".ops", "OpCost": ".ops", "register_cost": ".ops",
    "CallRecord": ".schema", "LayerRecord": ".schema",
    "InputSpec": ".inputs",
    "Trace": ".tracing", "trace": ".tracing",
    "Analysis": ".analysis", "LayerCost": ".analysis", "analyze": ".analysis", "analyze_trace": ".analysis",
    "OutputCost": ".passes.anytime",
    "view": ".viewer",
}

__all__ = ["UserError", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:  # graphcost.ops
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
