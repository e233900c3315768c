"""graphcost: loop-keeping computational graphs, cost passes and crossbar mapping for PyTorch.

>>> import torch, graphcost
>>> a = graphcost.analyze(torch.nn.Conv2d(3, 8, 3, padding=1), (1, 3, 32, 32))
>>> a.macs  # MACs, not FLOPs
221184
"""
from .errors import UserError

__version__ = "0.1.0"


from .ops import Call, OpCost, register_cost
from .schema import CallRecord, LayerRecord
from .tracing import Trace, trace
from .analysis import Analysis, LayerCost, analyze, analyze_trace
from .passes.anytime import OutputCost
from .viewer import view

__all__ = ["UserError", "trace", "Trace", "analyze", "analyze_trace", "Analysis", "LayerCost", "OutputCost",
           "register_cost", "Call", "OpCost", "CallRecord", "LayerRecord", "view"]
