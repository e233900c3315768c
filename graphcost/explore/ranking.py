"""The paper's ranking of architectures: Eq. 2's AUC of mIoU over MACs, peak-mIoU discarding, ordering.

Rows are the plain dicts of a sweep (:class:`~graphcost.explore.sweep.SweepResult`); the per-output
mIoU comes from an accuracy table (a DataFrame: the grid columns, ``output``, ``miou``).
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from graphcost.errors import UserError

#: Metrics ranked from high to low unless ``:min`` says otherwise.
HIGHER_IS_BETTER = {"auc", "peak_miou", "miou", "throughput_fps", "utilization", "tops_per_w"}
#: ``y0`` of Eq. 2: mIoU at chance level, the paper's CamVid value.
CHANCE_MIOU = 0.00828
#: A point whose peak mIoU is at most the best peak minus this is discarded (Sec. III-A).
PEAK_TOLERANCE = 0.02


def auc(xs: Sequence[float], ys: Sequence[float], y0: float) -> float:
    """Normalised area under mIoU-over-MACs (the ItNet paper's Eq. 2): trapezoids from ``(0, y0)``, over ``x_N``.

    >>> round(auc([1.0, 2.0], [0.5, 0.6], 0.0), 4)    # (1*(0.5+0)/2 + 1*(0.6+0.5)/2) / 2
    0.4
    """
    px, py = [0.0] + list(map(float, xs)), [float(y0)] + list(map(float, ys))
    area = 0.0
    for n in range(len(px) - 1):
        area += (px[n + 1] - px[n]) * ((py[n + 1] - y0) + (py[n] - y0)) / 2
    return area / px[-1] if px[-1] else float("nan")


def parse_metric(text: str) -> Tuple[str, bool]:
    """``"graph_size_bytes"`` -> (name, ascending); ``NAME:max`` / ``NAME:min`` choose the order.

    >>> parse_metric("auc"), parse_metric("graph_size_bytes"), parse_metric("params:max")
    (('auc', False), ('graph_size_bytes', True), ('params', False))
    """
    name, _, order = text.partition(":")
    name = name.strip()
    if not name:
        raise UserError("the metric needs a column name, e.g. auc or graph_size_bytes:min")
    if order and order not in ("min", "max"):
        raise UserError(f"a metric's order must be :min or :max, got {text!r}")
    ascending = (order == "min") if order else name not in HIGHER_IS_BETTER
    return name, ascending


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def _number(value, integer: bool) -> Optional[float]:
    """``value`` as a finite number (a whole one >= 1 if ``integer``), else None."""
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    if not math.isfinite(number) or (integer and (not number.is_integer() or number < 1)):
        return None
    return number


def check_table(table, source: str, required: Sequence[str], numbers: Sequence[str] = (),
                integers: Sequence[str] = (), may_be_blank: Sequence[str] = ()) -> None:
    """Refuse a table with a missing column or a bad cell, naming ``source``, the row (its CSV line) and column.

    ``numbers`` must be finite numbers, ``integers`` whole numbers >= 1; cells of ``may_be_blank``
    columns may be empty. Run it before any work, so a bad file never costs a computation.

    >>> import pandas as pd
    >>> check_table(pd.DataFrame({"output": [1, 2], "miou": ["50", "x"]}), "acc.csv", ["output", "miou"], ["miou"])
    Traceback (most recent call last):
    graphcost.errors.UserError: acc.csv, row 3, column miou: 'x' is not a number
    """
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise UserError(f"{source} lacks the column(s) {', '.join(missing)}")
    for column in list(numbers) + list(integers):
        if column not in table.columns:
            continue
        integer = column in integers
        for i, value in enumerate(table[column].tolist()):
            if _blank(value):
                if column in may_be_blank:
                    continue
                raise UserError(f"{source}, row {i + 2}, column {column}: the cell is empty")
            if _number(value, integer) is None:
                kind = "a whole number >= 1" if integer else "a number"
                raise UserError(f"{source}, row {i + 2}, column {column}: {str(value)[:40]!r} is not {kind}")


def check_accuracy_table(table, grid_keys: Sequence[str], source: str = "the accuracy table") -> None:
    """The per-output accuracy table of a sweep: the grid columns, ``output`` (from 1) and numeric ``miou``."""
    check_table(table, source, list(grid_keys) + ["output", "miou"], numbers=["miou"], integers=["output"])


def _per_output_miou(table, grid_keys: Sequence[str]) -> Dict[Tuple[str, ...], Dict[int, float]]:
    """``{grid point as strings: {output: mIoU as a fraction}}`` from an accuracy table."""
    check_accuracy_table(table, grid_keys)
    table = table.copy()
    table["miou"] = table["miou"].astype(float)
    if (table["miou"] > 1).any():
        table["miou"] = table["miou"] / 100.0
    groups: Dict[Tuple[str, ...], Dict[int, float]] = {}
    for record in table.to_dict("records"):
        key = tuple(str(record[k]) for k in grid_keys)
        groups.setdefault(key, {})[int(float(record["output"]))] = float(record["miou"])
    return groups


def attach_accuracy(rows: List[Dict[str, Any]], table, grid_keys: Sequence[str], chance: float = CHANCE_MIOU,
                    tolerance: float = PEAK_TOLERANCE) -> None:
    """Add ``auc``, ``peak_miou`` and ``discarded`` to rows from a per-output accuracy table.

    ``table`` (DataFrame) has the grid columns, ``output`` (1-based) and ``miou`` (fraction, or
    percent if any value exceeds 1). As in the paper (Sec. III-A): AUC of mIoU over the MACs of
    each output (Eq. 2, ``y0`` = chance mIoU), and a point whose peak mIoU is at most the best
    peak minus ``tolerance`` is discarded from the ranking.
    """
    groups = _per_output_miou(table, grid_keys)
    for row in rows:
        if row.get("status") != "ok":
            continue
        per_output = groups.get(tuple(str(row.get(k)) for k in grid_keys))
        if not per_output:
            continue
        outs = sorted(i for i in per_output if 1 <= i <= len(row["output_macs"]))
        if not outs:
            continue
        xs = [row["output_macs"][i - 1] for i in outs]
        ys = [per_output[i] for i in outs]
        row["auc"] = auc(xs, ys, chance)
        row["peak_miou"] = max(ys)
    peaks = [r["peak_miou"] for r in rows if "peak_miou" in r]
    if peaks:
        best = max(peaks)
        for r in rows:
            if "peak_miou" in r:
                r["discarded"] = bool(r["peak_miou"] <= best - tolerance)


def check_metric(metric: str, columns: Sequence[str]) -> None:
    """Refuse, before any work, a metric that will not be a column of the rows (``columns``)."""
    name, _ = parse_metric(metric)
    if name not in columns:
        hint = " (auc needs an accuracy table)" if name in ("auc", "peak_miou") else ""
        raise UserError(f"the metric {name!r} is not a column of the sweep{hint}; choose one of: "
                        f"{', '.join(sorted(set(columns)))}")


def rank_rows(rows: List[Dict[str, Any]], metric: str) -> List[Dict[str, Any]]:
    """Sort ok rows by ``metric`` (and set ``rank`` from 1); rows without it or discarded go last, unranked."""
    name, ascending = parse_metric(metric)
    ok = [r for r in rows if r.get("status") == "ok"]
    if ok and not any(name in r for r in ok):
        known = sorted({k for r in ok for k, v in r.items() if isinstance(v, (int, float)) and not
                        isinstance(v, bool)})
        hint = " (auc needs an accuracy table)" if name in ("auc", "peak_miou") else ""
        raise UserError(f"the metric {name!r} is not a column of the sweep{hint}; choose one of: {', '.join(known)}")
    rankable = [r for r in ok if r.get(name) is not None and not r.get("discarded")]
    rankable.sort(key=lambda r: r[name], reverse=not ascending)
    for i, r in enumerate(rankable, start=1):
        r["rank"] = i
    rest = [r for r in rows if r not in rankable]
    for r in rest:
        r["rank"] = None
    return rankable + rest


def ranked_rows(result, accuracy=None, metric: Optional[str] = None, chance: float = CHANCE_MIOU
                ) -> Tuple[List[Dict[str, Any]], Optional[str]]:
    """The ok rows of a sweep, with the paper's AUC where an accuracy table is given, ranked by ``metric``.

    Without a metric, an accuracy table ranks by ``auc`` (Eq. 2). Returns ``(rows, metric)``.
    """
    rows = [r for r in result.rows if r.get("status") == "ok"]
    if accuracy is not None:
        model_keys = [k for k in result.spec.grid_keys if not k.startswith("hw.")]  # accuracy is the model's
        attach_accuracy(rows, accuracy, model_keys, chance=chance)
        metric = metric or "auc"
    if metric:
        rows = rank_rows(rows, metric)
    return rows, metric


def parse_pareto(text: str) -> Tuple[Tuple[str, bool], Tuple[str, bool]]:
    """``"energy_j,throughput_fps"`` -> two ``(name, ascending)`` metrics (see :func:`parse_metric`).

    >>> parse_pareto("energy_j,throughput_fps")
    (('energy_j', True), ('throughput_fps', False))
    """
    parts = [p.strip() for p in (text or "").split(",")]
    if len(parts) != 2 or not all(parts):
        raise UserError(f"a Pareto front needs two metrics, METRIC,METRIC (e.g. energy_j,throughput_fps), got {text!r}")
    first, second = parse_metric(parts[0]), parse_metric(parts[1])
    return first, second


def pareto_front(rows: List[Dict[str, Any]], metrics) -> List[bool]:
    """Per row, whether no other row is at least as good in both metrics and better in one.

    ``metrics``: two ``(name, ascending)`` pairs (ascending: lower is better). Rows lacking a
    metric are never on the front.

    >>> rows = [{"e": 1, "fps": 10}, {"e": 2, "fps": 30}, {"e": 3, "fps": 20}, {"e": 1, "fps": 5}]
    >>> pareto_front(rows, (("e", True), ("fps", False)))
    [True, True, False, False]
    """
    def score(row):
        values = [row.get(name) for name, _ in metrics]
        if any(not isinstance(v, (int, float)) or isinstance(v, bool) or v != v for v in values):
            return None
        return tuple(v if ascending else -v for v, (_, ascending) in zip(values, metrics))  # lower is better

    scores = [score(r) for r in rows]

    def dominated(s) -> bool:
        return any(o is not None and o != s and all(a <= b for a, b in zip(o, s)) for o in scores)

    return [s is not None and not dominated(s) for s in scores]
