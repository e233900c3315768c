"""Capture by ``torch.export``, for models ``torch.fx`` cannot trace symbolically (Hugging Face transformers).

:func:`export_graph` runs ``torch.export.export`` non-strict (the model's own Python runs as it
stands) on fake inputs: no activation is allocated and no real forward runs. The graph it
returns is one tracing treats like its own fx graph, so both capture paths yield the same
:class:`~graphcost.Trace`:

* parameters and buffers, which export lifts to placeholders, are fetched again by ``get_attr``
  of the model's own attributes (the graph signature names them), so a call's parameter ids
  are the model's ``Parameter`` objects and tied weights (GPT-2's embedding and LM head) stay
  one node of the loop graph;
* tensor constants that are model attributes become ``get_attr`` too; constants made inside
  ``forward`` stay placeholders;
* every node keeps the fake value export computed (``meta["val"]``, in :attr:`Exported.fake_mode`):
  costing re-runs only the ops that compute;
* every call is an aten op, costed per aten op like any call without a registered formula
  (:mod:`graphcost.aten_costs`), and keeps export's ``nn_module_stack``: calls group into
  layers by module path.

>>> import torch
>>> exported = export_graph(torch.nn.Linear(3, 2), {"input": torch.empty(1, 3)})
>>> [(n.op, str(n.target)) for n in exported.graph.nodes]
[('get_attr', 'weight'), ('get_attr', 'bias'), ('placeholder', 'input'), ('call_function', 'aten.linear.default'), ('output', 'output')]
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Optional

import torch
import torch.fx.config
from torch import fx, nn
from torch._guards import detect_fake_mode
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils import _pytree as pytree
from torch.export.graph_signature import InputKind

from . import ops
from .capture_dispatch import tensor_attributes_kept
from .capture_fx import ExportedCostInterpreter, run_on_fake_inputs
from .errors import UserError, first_line
from .inputs import bind_inputs, fake_input
from .schema import Captured


@dataclass
class Exported:
    """An exported model's graph, parameters fetched from the model itself."""

    graph: fx.Graph
    #: the fake mode of the values export recorded on the nodes (``meta["val"]``)
    fake_mode: FakeTensorMode


class ExportFailed(UserError):
    """``torch.export`` could not capture the model."""


def export_capture(model: nn.Module, bound: Dict[str, Any], dtype: torch.dtype, device: torch.device,
                   custom: Optional[Dict] = None, *, bound_to_model: bool = True) -> Captured:
    """Export ``model`` on fake inputs and cost its graph (every node's fake value as export recorded it).

    ``bound`` holds ``forward``'s arguments by name (``bound_to_model=False``: by the name a holder
    of the bare leaf ``model`` gave its one input, re-bound here to ``model``'s own signature).

    Raises
    ------
    ExportFailed
        If ``torch.export`` cannot capture the model.
    """
    with FakeTensorMode(allow_non_fake_inputs=True):
        values = [fake_input(value, dtype, device) for value in bound.values()]
    with tensor_attributes_kept(model):  # export runs the model's Python: a cached tensor would stay fake
        exported = export_graph(model, dict(zip(bound, values)) if bound_to_model else bind_inputs(model, values, {}))
    interp = ExportedCostInterpreter(model, exported.graph, set(), custom or {}, memoise=False)  # nodes keep export's values
    run_on_fake_inputs(interp, exported.graph, bound, dtype, device, type(model).__name__, exported.fake_mode)
    return Captured(model, exported.graph, interp.records, list(interp.opaque_calls), sorted(interp.unknown),
                    interp.uncounted)


def export_graph(model: nn.Module, inputs: Dict[str, torch.Tensor]) -> Exported:
    """Export ``model(**inputs)`` (non-strict) and rewrite its lifted parameters as ``get_attr``.

    Parameters
    ----------
    model : torch.nn.Module
        The model, in the mode it should be captured in (tracing puts it in eval mode).
    inputs : dict
        ``forward`` arguments by name: fake, meta or real tensors (only shapes and dtypes count).

    Returns
    -------
    Exported
        The graph (each node's fake value in ``meta["val"]``) and the fake mode of those values.

    Raises
    ------
    ExportFailed
        If ``torch.export`` cannot capture the model (one line: its first).
    """
    try:
        with _torch_logs_off(), _no_stack_traces():
            program = torch.export.export(model, (), dict(inputs), strict=False)
    except Exception as exc:  # export raises many types; the user needs the first line
        raise ExportFailed(f"torch.export cannot capture {type(model).__name__}: {first_line(exc)}") from None
    return _refetch_lifted(model, program)


@contextlib.contextmanager
def _no_stack_traces() -> Iterator[None]:
    """Export without recording a Python stack trace per node: nothing here reads them, and
    capturing them is a quarter of export's time on a transformer."""
    previous = torch.fx.config.do_not_emit_stack_traces
    torch.fx.config.do_not_emit_stack_traces = True
    try:
        yield
    finally:
        torch.fx.config.do_not_emit_stack_traces = previous


@contextlib.contextmanager
def _torch_logs_off() -> Iterator[None]:
    """No log records or prints while exporting: a failing export logs its traceback and prints
    the partial graph (dozens of lines) before raising what becomes one line."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "tensor attributes assigned during export": restored here
            yield
    finally:
        logging.disable(previous)


_FROM_MODEL = (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR)


def _refetch_lifted(model: nn.Module, program) -> Exported:
    """The program's graph with lifted model attributes fetched by ``get_attr`` of ``model``."""
    graph = program.graph_module.graph
    placeholders = {n.name: n for n in graph.nodes if n.op == "placeholder"}
    for spec in program.graph_signature.input_specs:
        node = placeholders[spec.arg.name]
        if spec.kind in _FROM_MODEL and _has_attr(model, spec.target):
            with graph.inserting_before(node):
                fetched = graph.create_node("get_attr", spec.target)  # graph.get_attr warns: the target is the model's
            fetched.meta.update(node.meta)
            node.replace_all_uses_with(fetched)
            graph.erase_node(node)
        elif spec.kind not in (InputKind.CONSTANT_TENSOR, InputKind.USER_INPUT):
            raise ExportFailed(f"torch.export gave {type(model).__name__} an input graphcost cannot feed: {spec.kind.name}")
    _name_outputs(graph, program)
    values = [n.meta["val"] for n in graph.nodes if isinstance(n.meta.get("val"), torch.Tensor)]
    return Exported(graph, detect_fake_mode(values))


def _name_outputs(graph: fx.Graph, program) -> None:
    """Export returns a flat tuple; give the outputs back the names ``forward`` returned them
    under (``last_hidden_state``, ``logits``, ``aux.1``), as a dict the output node returns."""
    output = next(n for n in graph.nodes if n.op == "output")
    user = list(output.args[0])[-len(program.graph_signature.user_outputs):] if \
        program.graph_signature.user_outputs else []
    returned = pytree.tree_unflatten(list(range(len(user))), program.call_spec.out_spec)
    names = [".".join(ops.pytree_key_text(key) for key in path) for path, _ in pytree.tree_flatten_with_path(returned)[0]]
    output.args = ({name: node for name, node in zip(names, user)},)


def _has_attr(model: nn.Module, target: str) -> bool:
    obj: Any = model
    for part in target.split("."):
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return isinstance(obj, torch.Tensor)
