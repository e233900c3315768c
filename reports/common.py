"""Shared plumbing of the reports: cached analyses through the executor, output folders, figure style.

Reports never compute costs themselves: an *analysis item* (a :class:`graphcost.resolve.ModelSpec`:
zoo model, dataset, params, input) goes through :func:`analyse_items`, which runs :func:`analyse_item`
(``graphcost.analyze``) on an executor and keeps the plain-data summary in the result store.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import pandas as pd

from graphcost.analysis import analyze
from graphcost.errors import UserError, first_line, shape_text
from graphcost.models import dataset_preset, model_entry
from graphcost.fileio import clean_stale_temp_files, write_atomic
from graphcost.resolve import ModelSpec, build_for_shapes
from graphcost.runtime.store import cached_map, result_key

ANALYSIS_KIND = "analysis-summary"


# --------------------------------------------------------------------------- analyses
def analysis_item(model: str, dataset: Optional[str] = None, params: Optional[Mapping[str, Any]] = None,
                  input_shape: Optional[Sequence[int]] = None, shared: Optional[bool] = None) -> ModelSpec:
    """The picklable work item naming one analysis: a :class:`~graphcost.resolve.ModelSpec` with its
    dataset and input shape filled in (the input shape defaults to the dataset's)."""
    preset = dataset_preset(dataset or model_entry(model).default_dataset)
    return ModelSpec(name=model, dataset=preset.name, input_shape=tuple(input_shape or preset.input_shape),
                     params=dict(params or {}), shared=shared)


def item_key(item, kind: str = ANALYSIS_KIND) -> str:
    """Store key of a work item (a dataclass: a ``ModelSpec`` or a report's own item)."""
    return result_key(kind, item=item)


def summarize(result) -> Dict[str, Any]:
    """The plain-data part of an :class:`~graphcost.Analysis` the reports use (its ``to_dict``,
    less the per-layer list)."""
    d = result.to_dict()
    return {key: d[key] for key in ("params", "macs", "graph_size_bytes", "latency_layers", "input_shape",
                                    "outputs")}


def analyse_item(item: ModelSpec) -> Dict[str, Any]:
    """``graphcost.analyze`` of one item, summarised. Top-level so executors can ship it."""
    built = build_for_shapes(item)
    return summarize(analyze(built.module, built.input_shape, name=item.name))


def run_cached(items: Sequence[Any], fn: Callable[[Any], Dict[str, Any]], kind: str, executor=None, store=None,
               progress=None) -> List[Dict[str, Any]]:
    """``[fn(item) for item in items]`` with the store in front and the executor behind; input order.

    Every item has a ``name`` (the model's), kept beside its result in the store.
    """
    results, _ = cached_map(fn, items, [item_key(item, kind) for item in items], executor, store,
                            meta=lambda i: {"kind": kind, "model": items[i].name}, progress=progress)
    return results


def analyse_items(items: Sequence[ModelSpec], executor=None, store=None, progress=None) -> List[Dict[str, Any]]:
    """Summaries of :func:`analyse_item` for every item, from the store where possible."""
    return run_cached(items, analyse_item, ANALYSIS_KIND, executor, store, progress)


# --------------------------------------------------------------------------- inputs and labels
def read_table(path: str, **read_csv_args):
    """An accuracy table (CSV) as a DataFrame, or :class:`UserError` naming what is wrong with the file."""
    # Only an empty cell is missing: "n/a" or "NaN" written by a user is a bad value to report, not a blank.
    read_csv_args = {"keep_default_na": False, "na_values": [""], **read_csv_args}
    try:
        return pd.read_csv(path, **read_csv_args)
    except FileNotFoundError:
        raise UserError(f"accuracy table {path!r} does not exist; pass an existing CSV") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, IsADirectoryError) as exc:
        raise UserError(f"cannot read accuracy table {path!r} as CSV: {first_line(exc)}") from None


def variant_name(shared: Optional[bool]) -> Optional[str]:
    """``shared=`` of a model with shared / independent weights as its variant name (None: no variants)."""
    return None if shared is None else ("shared" if shared else "independent")


def model_label(model: str, shared: Optional[bool], params: Optional[Mapping[str, Any]] = None) -> str:
    """``"itnet (independent) f=29"``: a model, its variant and its non-default parameters."""
    variant = variant_name(shared)
    text = model + ("" if variant is None else f" ({variant})")
    if params:
        text += " " + ",".join(f"{k}={v}" for k, v in params.items())
    return text


def style_key(model: str, shared: Optional[bool]) -> str:
    """The :data:`STYLE` key of a model: its independent-weights variant has its own colour."""
    return f"{model}-independent" if shared is False else model


# --------------------------------------------------------------------------- output folders
def check_out_dir(path: str) -> str:
    """Make sure files can be written into folder ``path`` (its nearest existing ancestor when it does not exist
    yet), else :class:`UserError`; creates nothing: the folder appears with the first file written into it."""
    path = os.path.abspath(path or ".")
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"--out {path!r} is a file, not a folder; give a folder to write into")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f"cannot write to --out {path!r} ({existing!r} is a file); choose a writable folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to --out {path!r} (Permission denied); choose a writable folder")
    if existing == path:
        clean_stale_temp_files(path)
    return path


def write_files(out_dir: str, writers: Mapping[str, Callable[[str], None]]) -> List[str]:
    """Write every file to a temporary name first, then move them all into place: all or nothing.

    ``writers`` maps a file name (inside ``out_dir``) to ``write(tmp_path)``. Each file goes
    through :func:`graphcost.fileio.write_atomic`, nested: file ``i`` is moved into place only
    after files ``i+1, ...`` are written and moved, so a failing writer leaves no file behind.
    """
    names = list(writers)

    def stage(i: int) -> None:
        if i < len(names):
            def write(tmp: str) -> None:
                writers[names[i]](tmp)
                stage(i + 1)

            write_atomic(os.path.join(out_dir, names[i]), write)

    try:
        stage(0)
    except OSError as exc:
        raise UserError(f"cannot write into {out_dir!r} ({exc.strerror or exc}); choose a writable folder") \
            from None
    return [os.path.join(out_dir, name) for name in names]


def figure_writers(fig, stem: str, frame=None) -> Dict[str, Callable[[str], None]]:
    """Writers for ``STEM.png``, ``STEM.svg`` and (with ``frame``) ``STEM.csv``."""
    writers: Dict[str, Callable[[str], None]] = {
        f"{stem}.png": lambda p: fig.savefig(p, format="png", dpi=200),
        f"{stem}.svg": lambda p: fig.savefig(p, format="svg"),
    }
    if frame is not None:
        writers[f"{stem}.csv"] = lambda p: frame.to_csv(p, index=False)
    return writers


# --------------------------------------------------------------------------- style
def pyplot():
    """matplotlib.pyplot on the Agg backend (never a display), with a compact paper style."""
    # Lazy on purpose: matplotlib is slow to import and only figures need it (not `graphcost --help`).
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "font.size": 7.5, "axes.titlesize": 8, "axes.labelsize": 7.5, "legend.fontsize": 6.5,
        "xtick.labelsize": 6.5, "ytick.labelsize": 6.5, "lines.markersize": 4.5, "lines.linewidth": 1.2,
        "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.5, "savefig.bbox": "tight",
        "svg.fonttype": "none", "figure.dpi": 100,
    })
    return plt


#: One colour and marker per model family, shared by every figure.
STYLE = {
    "itnet": ("#d62728", "o"),
    "itnet-independent": ("#9467bd", "s"),
    "enet": ("#1f77b4", "^"),
    "espnetv2": ("#2ca02c", "D"),
    "cgnet": ("#ff7f0e", "v"),
    "recunet": ("#8c564b", "P"),
}
_EXTRA = [("#17becf", "X"), ("#e377c2", "h"), ("#7f7f7f", "*"), ("#bcbd22", "p")]


def style_for(key: str, index: int = 0) -> Tuple[str, str]:
    return STYLE.get(key, _EXTRA[index % len(_EXTRA)])
