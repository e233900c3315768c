"""``graphcost view``: one self-contained interactive HTML page of a model's graph, costs and mapping.

The page draws the loop-keeping graph (and, on a toggle, the execution DAG) with cytoscape.js and
dagre (vendored, see ``vendor/README.md``), colours nodes by a cost, highlights the longest path
and the sub-graph of any anytime output, and holds the summary tables of ``analyze`` and ``map``.
Its numbers are the JSON of ``analyze --format json`` / ``map --format json``, embedded unchanged.

>>> import torch, graphcost
>>> page = graphcost.view(torch.nn.Conv2d(3, 8, 3), (1, 3, 16, 16))
>>> from graphcost.viewer import read_blocks
>>> read_blocks(page)["analysis"]["macs"]   # 8 out channels x 14x14 pixels x 3*3*3
42336
"""
from __future__ import annotations

import os
from typing import Any, Optional, Sequence

from torch import nn

from ..analysis import Analysis, analyze_trace
from ..errors import UserError, shape_text
from ..tracing import Trace, trace as trace_model
from .data import page_data
from .page import build_page, read_blocks, write_page

__all__ = ["view", "render_html", "read_blocks", "check_out_file", "write_page"]


def check_out_file(path: str) -> str:
    """``path`` as an absolute ``.html`` file name whose folder exists and is writable, else
    :class:`~graphcost.UserError` (checked before any work)."""
    if not path or not path.lower().endswith((".html", ".htm")):
        raise UserError(f"--out must be a .html file, got {path!r}")
    path = os.path.abspath(path)
    if os.path.isdir(path):
        raise UserError(f"--out {path!r} is a folder; give a file name ending in .html")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {path!r}: folder {folder!r} does not exist or is not writable")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise UserError(f"cannot write {path!r}: the file is read-only")
    return path


def render_html(analysis: Analysis, trace: Optional[Trace] = None, mapping=None, *,
                title: Optional[str] = None) -> str:
    """The page of ``analysis`` (with ``trace``: its graphs; with ``mapping``: its mapping panel).

    Parameters
    ----------
    analysis : the :class:`~graphcost.Analysis` whose ``to_dict()`` the page embeds.
    trace : the :class:`~graphcost.Trace` it was computed from; without it the page holds the
        tables only (an ``Analysis`` does not keep its graphs).
    mapping : a :class:`graphcost.crossbar.Performance` or the ``MapResult`` of
        :func:`graphcost.crossbar.run.run_map`: the page embeds its ``to_dict()`` (the JSON of
        ``graphcost map``, energy and area included where the result has them).

    Returns
    -------
    str : the HTML text.
    """
    blocks = page_data(analysis, trace, mapping)
    shape = shape_text(analysis.input_shape)
    return build_page(blocks, title or f"{analysis.model} @ {shape} - graphcost view")


def view(model: nn.Module, inputs: Any = (1, 3, 224, 224), *, out: Optional[str] = None,
         name: Optional[str] = None, array=None, chip=None, depthwise: str = "dense", mapping=None,
         bytes_per_element: Optional[int] = None, all_layers: bool = False, leaf_modules: Sequence[str] = (),
         tracer: str = "auto") -> str:
    """Trace and analyse ``model`` (and map it onto ``array`` crossbars), return the page's HTML.

    Parameters
    ----------
    model, name, bytes_per_element, all_layers, leaf_modules, tracer : as :func:`graphcost.analyze`.
    inputs : what ``forward`` is called with, as ``inputs`` of :func:`graphcost.analyze`.
    out : also write the page to this ``.html`` file (checked before any work; written atomically).
    array : a :class:`graphcost.crossbar.ArraySpec`; with it the page shows the mapping.
    chip : a :class:`graphcost.crossbar.ChipSpec` (default: as many arrays as the graph needs).
    depthwise : tiling of grouped convs (see ``graphcost map --depthwise``).
    mapping : instead of ``array``: a mapping already computed for this model (see :func:`render_html`).

    Raises
    ------
    UserError : an unwritable ``out``, a model that cannot be traced, a mapping that fails.
    """
    if array is not None and mapping is not None:
        raise ValueError("give either array (map on this trace) or mapping (already mapped), not both")
    path = check_out_file(out) if out is not None else None
    t = trace_model(model, inputs, leaf_modules=leaf_modules, tracer=tracer)
    analysis = analyze_trace(t, name=name, bytes_per_element=bytes_per_element, all_layers=all_layers)
    if array is not None:
        from ..crossbar import ChipSpec, map_trace, performance

        mapping = performance(map_trace(t, array, depthwise, name=analysis.model), chip or ChipSpec())
    page = render_html(analysis, t, mapping)
    if path is not None:
        write_page(path, page)
    return page
