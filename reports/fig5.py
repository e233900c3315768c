"""The ItNet paper's Fig. 5 from live numbers: mIoU over graph size, latency, MACs and parameters.

A 2x4 grid, rows CamVid (test set, 360x480) and Cityscapes (validation set, 512x1024), columns
graph size, latency, MACs and parameters. Every x-value is computed by graphcost at the
dataset's resolution; mIoU comes from ``reports/literature.csv`` (one row per model, variant,
dataset, output and split, with its citation) or from the user's accuracy table, whose rows
replace the shipped ones with the same (model, variant, dataset, output).

ItNet is drawn as its anytime curve (one point per output) wherever per-output mIoU is known;
otherwise its known mIoU sits on the last output (the text does not say which output reached
it). Models or outputs without a published mIoU are drawn *cost only*: a tick on the bottom
edge of each panel at their live x-value, so every analysed network stays visible.

Per-output x-values: MACs, latency, graph size and parameters of an output are those of the part
of the graph it needs (graphcost's anytime pass): ItNet's output n does not use the classifiers of
the other outputs.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pandas as pd

from graphcost.errors import UserError
from graphcost.explore import check_table
from graphcost.resolve import parse_params

from .common import (analyse_items, analysis_item, figure_writers, pyplot, read_table, shape_text, style_for,
                     write_files)

DATASETS = ("camvid", "cityscapes")
#: The split Fig. 5 shows per dataset (caption: "test set of CamVid ... validation set of Cityscapes").
PAPER_SPLIT = {"camvid": "test", "cityscapes": "val"}
DATASET_TITLE = {"camvid": "CamVid", "cityscapes": "Cityscapes"}
LITERATURE_COLUMNS = ("model", "variant", "dataset", "output", "miou", "split", "source", "table", "note")

#: The four x-axes: (column in the points CSV, axis label, scale, log axis?)
AXES = (
    ("graph_size_mb", "graph size (MB)", 1e-6, True),
    ("latency_layers", "latency (conv layers)", 1.0, False),
    ("gmacs", "MACs (G)", 1e-9, True),
    ("mparams", "parameters (M)", 1e-6, True),
)


@dataclass(frozen=True)
class Entry:
    """One network of the figure: a zoo model with its parameters on one dataset."""

    model: str
    variant: str
    label: str
    style: str
    dataset: str
    params: Tuple[Tuple[str, Any], ...] = ()
    shared: Optional[bool] = None
    group: str = ""  # entries of one group (ESPNetv2 widths) are joined by a line

    @property
    def params_text(self) -> str:
        return ";".join(f"{k}={v}" for k, v in self.params)


# ItNet's Fig. 5 configuration: N=16 iterations, L=3 scales, K=1 block (Sec. III-A); on CamVid
# width f=51 shared and f=29 independent (Sec. III-C). Cityscapes uses the zoo's preset width.
ITNET_ARCH = (("N", 16), ("L", 3), ("K", 1))
ITNET_WIDTH = {("camvid", True): 51, ("camvid", False): 29}
ESPNET_WIDTHS = (0.5, 1.0, 1.5, 2.0)


def default_entries(datasets: Sequence[str] = DATASETS) -> List[Entry]:
    entries: List[Entry] = []
    for ds in datasets:
        for shared, variant, label, style in ((True, "shared", "ItNet (shared weights)", "itnet"),
                                              (False, "independent", "ItNet (independent weights)",
                                               "itnet-independent")):
            params = list(ITNET_ARCH)
            if (ds, shared) in ITNET_WIDTH:
                params.append(("f", ITNET_WIDTH[(ds, shared)]))
            entries.append(Entry("itnet", variant, label, style, ds, tuple(params), shared=shared))
        entries.append(Entry("enet", "default", "ENet", "enet", ds))
        for s in ESPNET_WIDTHS:
            entries.append(Entry("espnetv2", f"s={s}", "ESPNetv2", "espnetv2", ds, (("s", s),), group="espnetv2"))
        entries.append(Entry("cgnet", "default", "CGNet", "cgnet", ds))
        entries.append(Entry("recunet", "default", "RecUNet", "recunet", ds))
    return entries


# --------------------------------------------------------------------------- accuracy tables
def literature_path() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "literature.csv")


def load_accuracy_table(path: Optional[str] = None):
    """The shipped literature table, or a user's CSV with the same columns (``model``, ``variant``,
    ``dataset``, ``miou`` required; ``output``, ``split``, ``source``, ``table``, ``note``, ``params``
    optional). ``miou`` is in percent."""
    target = path or literature_path()
    frame = read_table(target, dtype={"variant": str, "model": str, "dataset": str})
    # A user's row must name its split: without one it could never replace the shipped value it means.
    required = ["model", "variant", "dataset", "miou"] + (["split"] if path else [])
    check_table(frame, target, required, numbers=["miou"], integers=["output"], may_be_blank=["miou", "output"])
    if path:
        blank = frame["split"].isna() | (frame["split"].astype(str).str.strip() == "")
        if blank.any():
            row = int(blank.to_numpy().nonzero()[0][0]) + 2
            raise UserError(f"{target}, row {row}, column split: the cell is empty; name the split of the mIoU "
                            f"(the figure shows {', '.join(f'{d} {s}' for d, s in PAPER_SPLIT.items())})")
    for column in LITERATURE_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    frame["miou"] = pd.to_numeric(frame["miou"], errors="coerce")
    frame["output"] = pd.to_numeric(frame["output"], errors="coerce")
    frame["variant"] = frame["variant"].fillna("default")
    frame["split"] = frame["split"].fillna("")
    frame["dataset"] = frame["dataset"].str.lower()
    return frame


def merge_tables(base, user):
    """User rows replace shipped rows with the same (model, variant, dataset, output, split)."""
    if user is None:
        return base
    key = ["model", "variant", "dataset", "output", "split"]

    def keys(frame):
        return pd.Series(["|".join(_key_text(v) for v in row) for row in frame[key].itertuples(index=False)],
                         index=frame.index)

    user = user.copy()
    user["source"] = user["source"].fillna("user accuracy table")
    kept = base[~keys(base).isin(set(keys(user)))]
    return pd.concat([kept, user], ignore_index=True)


def _key_text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def user_entries(table, known: Sequence[Entry]) -> List[Entry]:
    """Entries for user rows naming a (model, variant, dataset) the default list lacks; needs ``params``."""
    have = {(e.model, e.variant, e.dataset) for e in known}
    extra: Dict[Tuple[str, str, str], Entry] = {}
    if "params" not in table.columns:
        return []
    for row in table.to_dict("records"):
        k = (row["model"], row["variant"], row["dataset"])
        if k in have or k in extra or row["dataset"] not in DATASETS:
            continue
        text = row.get("params")
        items = [p for p in str(text).split(";") if p.strip()] if isinstance(text, str) else []
        params = parse_params(items)
        shared = params.pop("shared", None)
        extra[k] = Entry(row["model"], row["variant"], f"{row['model']} {row['variant']}", row["model"],
                         row["dataset"], tuple(params.items()), shared=shared)
    return list(extra.values())


def miou_for(table, entry: Entry) -> Tuple[Dict[Optional[int], Dict[str, Any]], bool]:
    """Known mIoU per output (``None`` = last output) for an entry, preferring the paper's split.

    Returns ``({output: row}, on_paper_split)``.
    """
    rows = table[(table["model"] == entry.model) & (table["variant"] == entry.variant)
                 & (table["dataset"] == entry.dataset) & table["miou"].notna()]
    if rows.empty:
        return {}, True
    wanted = PAPER_SPLIT.get(entry.dataset, "")
    preferred = rows[rows["split"] == wanted]
    on_split = not preferred.empty
    chosen = preferred if on_split else rows[rows["split"] == rows["split"].iloc[0]]
    out: Dict[Optional[int], Dict[str, Any]] = {}
    for row in chosen.to_dict("records"):
        output = None if pd.isna(row["output"]) else int(row["output"])
        out[output] = row
    return out, on_split


# --------------------------------------------------------------------------- compute
def compute_points(entries: Sequence[Entry], table, executor=None, store=None, progress=None):
    """Analyse every entry (executor + store) and return the points frame: one row per drawn point."""
    items = [analysis_item(e.model, e.dataset, dict(e.params), shared=e.shared) for e in entries]
    summaries = analyse_items(items, executor, store, progress)
    rows: List[Dict[str, Any]] = []
    for entry, item, summary in zip(entries, items, summaries):
        known, on_split = miou_for(table, entry)
        outputs = summary["outputs"] or [{"index": 1, "macs": summary["macs"],
                                          "latency_layers": summary["latency_layers"],
                                          "graph_size_bytes": summary["graph_size_bytes"],
                                          "params": summary["params"]}]
        n_out = len(outputs)
        per_output = {k: v for k, v in known.items() if k is not None}
        anytime = n_out > 1 and len(per_output) >= 2
        for out in outputs:
            index = out["index"]
            lit = per_output.get(index)
            if lit is None and not anytime and index == n_out:
                lit = known.get(None)  # a value without an output index belongs to the last output
            kind = "cost-only" if lit is None else ("anytime" if anytime else "point")
            rows.append({
                "dataset": entry.dataset,
                "model": entry.model,
                "variant": entry.variant,
                "label": entry.label,
                "style": entry.style,
                "group": entry.group,
                "output": index,
                "outputs": n_out,
                "model_params": entry.params_text + (f";shared={entry.shared}" if entry.shared is not None else ""),
                "input_shape": shape_text(item.input_shape),
                "graph_size_bytes": out["graph_size_bytes"],
                "latency_layers": out["latency_layers"],
                "macs": out["macs"],
                "params": out["params"],
                "graph_size_mb": out["graph_size_bytes"] / 1e6,
                "gmacs": out["macs"] / 1e9,
                "mparams": out["params"] / 1e6,
                "miou": float(lit["miou"]) if lit is not None else math.nan,
                "miou_split": (lit.get("split") or "") if lit is not None else "",
                "paper_split": bool(on_split) if lit is not None else None,
                "miou_source": (lit.get("source") or "") if lit is not None else "",
                "miou_table": (lit.get("table") or "") if lit is not None else "",
                "plotted_as": kind,
            })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- plot
def plot(points, title: Optional[str] = None):
    """The 2x4 figure from the points frame (see :func:`compute_points`)."""
    from matplotlib.transforms import blended_transform_factory  # lazy: matplotlib only where a figure is drawn

    plt = pyplot()
    datasets = [d for d in DATASETS if d in set(points["dataset"])]
    fig, axes = plt.subplots(len(datasets), len(AXES), figsize=(7.16, 1.75 * len(datasets) + 0.75),
                             squeeze=False, sharey="row")
    handles: Dict[str, Any] = {}
    letters = "abcdefghijklmnop"
    for r, ds in enumerate(datasets):
        sub = points[points["dataset"] == ds]
        ylim = _miou_limits(sub)
        for c, (column, label, _scale, log) in enumerate(AXES):
            ax = axes[r][c]
            ax.set_ylim(*ylim)
            rug = blended_transform_factory(ax.transData, ax.transAxes)
            for (style, label_text), part in sub.groupby(["style", "label"], sort=False):
                _draw_series(ax, rug, part, column, style)
                handles.setdefault(label_text, _legend_handle(style))
            if log:
                ax.set_xscale("log")
                plain_log_ticks(ax)
            ax.set_xlabel(label)
            ax.set_title(f"{letters[r * len(AXES) + c]}) {DATASET_TITLE.get(ds, ds)}", loc="left", fontsize=7.5)
            if c == 0:
                ax.set_ylabel(f"mIoU (%), {PAPER_SPLIT.get(ds, '')} set")
            _pad_xlim(ax, sub[column], log)
    _add_legend(fig, handles)
    if title:
        fig.suptitle(title, fontsize=8.5)
    fig.tight_layout(rect=(0, 0.1 if len(handles) > 5 else 0.07, 1, 1))
    return fig


def _miou_limits(sub) -> Tuple[int, int]:
    """The y range of one dataset's row: every plotted mIoU with a margin (0-100 when none is known)."""
    known = sub[sub["plotted_as"] != "cost-only"]
    if not len(known):
        return 0, 100
    low, high = float(known["miou"].min()), float(known["miou"].max())
    pad = max(2.0, 0.12 * (high - low))
    return math.floor(low - pad - 3), math.ceil(high + pad)


def _draw_series(ax, rug, part, column: str, style: str) -> None:
    """One model's points: a line through anytime outputs or a group, else markers; hollow markers for an mIoU
    from another split; models with no published mIoU as a rug of ticks on the x-axis."""
    colour, marker = style_for(style)
    drawn = part[part["plotted_as"] != "cost-only"].sort_values(column)
    cost_only = part[part["plotted_as"] == "cost-only"]
    if len(drawn):
        anytime = drawn[drawn["plotted_as"] == "anytime"]
        grouped = drawn["group"].iloc[0] != "" and len(drawn) > 1
        if len(anytime) > 1 or grouped:
            ax.plot(drawn[column], drawn["miou"], color=colour, marker=marker, markersize=3.2,
                    linewidth=1.0, linestyle="-" if len(anytime) > 1 else "--")
        else:
            ax.plot(drawn[column], drawn["miou"], color=colour, marker=marker, linestyle="none",
                    markeredgecolor="black", markeredgewidth=0.4)
        off = drawn[drawn["paper_split"] == False]  # noqa: E712 - pandas element-wise
        if len(off):
            ax.plot(off[column], off["miou"], linestyle="none", marker=marker, markersize=6.5,
                    markerfacecolor="none", markeredgecolor=colour, markeredgewidth=0.8)
    if len(cost_only):
        ax.scatter(cost_only[column], [0.0] * len(cost_only), transform=rug, marker="|", s=60,
                   color=colour, alpha=0.85, linewidths=1.0, clip_on=False, zorder=3)


def _legend_handle(style: str):
    from matplotlib.lines import Line2D

    colour, marker = style_for(style)
    return Line2D([], [], color=colour, marker=marker,
                  linestyle="-" if (style.startswith("itnet") or style == "espnetv2") else "none",
                  markeredgecolor="black" if not style.startswith("itnet") else colour,
                  markeredgewidth=0.4, markersize=4.5)


def _add_legend(fig, handles: Dict[str, Any]) -> None:
    """The models' legend below the panels, plus the two marker conventions (rug ticks, hollow markers)."""
    from matplotlib.lines import Line2D

    handles["cost only: live x-value, no published mIoU"] = Line2D([], [], color="0.3", marker="|",
                                                                   linestyle="none", markersize=7)
    handles["mIoU from another split (see CSV)"] = Line2D([], [], color="0.3", marker="o", linestyle="none",
                                                          markerfacecolor="none", markersize=6)
    fig.legend(list(handles.values()), list(handles.keys()), loc="lower center", ncol=5, frameon=False,
               bbox_to_anchor=(0.5, -0.01))


def plain_log_ticks(ax, axis: str = "x") -> None:
    """Log-axis ticks at 1, 2, 5 x 10^k written as plain numbers (0.2, 5, 300), no overlapping labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # lazy: see plot()

    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def _pad_xlim(ax, values, log: bool) -> None:
    values = [float(v) for v in values if v and v > 0] if log else [float(v) for v in values]
    if not values:
        return
    lo, hi = min(values), max(values)
    if log:
        ax.set_xlim(lo / 1.6, hi * 1.6)
    else:
        span = max(hi - lo, 1.0)
        ax.set_xlim(lo - 0.06 * span, hi + 0.06 * span)


# --------------------------------------------------------------------------- the command
def prepare(accuracy_table: Optional[str] = None, datasets: Sequence[str] = DATASETS) -> Tuple[Any, List[Entry]]:
    """The merged accuracy table and the figure's entries (defaults plus the user table's extra networks).

    Reads every table before any work, so a bad ``--accuracy-table`` fails at once.
    """
    user = load_accuracy_table(accuracy_table) if accuracy_table else None
    table = merge_tables(load_accuracy_table(), user)
    entries = default_entries(datasets)
    if user is not None:
        entries += user_entries(user, entries)
    return table, entries


def run(out_dir: str, accuracy_table: Optional[str] = None, executor=None, store=None, progress=None,
        datasets: Sequence[str] = DATASETS, prepared: Optional[Tuple[Any, List[Entry]]] = None
        ) -> Tuple[List[str], Any]:
    """Compute, draw and write ``fig5.png``, ``fig5.svg`` and ``fig5.csv`` into ``out_dir`` (all or nothing).

    ``prepared``: what :func:`prepare` returned for the same table and datasets (read again if absent).
    """
    table, entries = prepared or prepare(accuracy_table, datasets)
    points = compute_points(entries, table, executor, store, progress)
    fig = plot(points)
    try:
        written = write_files(out_dir, figure_writers(fig, "fig5", points))
    finally:
        pyplot().close(fig)
    return written, points
