"""graphcost: loop-keeping computational graphs, cost passes and crossbar mapping for PyTorch.

>>> import torch, graphcost
>>> a = graphcost.analyze(torch.nn.Conv2d(3, 8, 3, padding=1), (1, 3, 32, 32))
>>> a.macs  # MACs, not FLOPs
221184
"""
from .errors import UserError

__version__ = "0.1.0"


def __getattr__(name):
    # Keep `import graphcost` light (the CLI's --help should not pay for torch.fx).
    if name in ("trace", "Trace"):
        from . import trace as _trace_mod

        return getattr(_trace_mod, name if name == "Trace" else "trace_model")
    if name in ("analyze", "analyze_trace"):
        from . import analysis as _analysis

        return getattr(_analysis, name)
    if name in ("Analysis", "LayerCost", "OutputCost"):
        from . import analysis as _analysis

        return getattr(_analysis, name)
    raise AttributeError(name)


__all__ = ["UserError", "trace", "Trace", "analyze", "analyze_trace", "Analysis", "LayerCost", "OutputCost"]
