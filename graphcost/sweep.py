"""Design-space sweeps: a grid over a zoo model's parameters, a width search per grid point.

The paper's grid search (ItNet, Section III-A, Figs. A2/A3) as plain Python over the API::

    from graphcost.sweep import SweepSpec, parse_grid, run_sweep
    from graphcost.executor import make_executor
    from graphcost.store import open_store

    spec = SweepSpec(model="itnet", grid=parse_grid(["N=1,2,4,8,16", "L=1,2,3,4", "K=1,2,3"]),
                     dataset="camvid", shared=True, macs_budget=2.2e9)
    with make_executor("local") as ex, open_store() as store:
        result = run_sweep(spec, ex, store)
    result.frame()      # one row per grid point: N, L, K, f, macs, params, graph_size_bytes, ...

For every grid point with a MAC budget, the *width search* finds the largest integer width
(``f`` by default) whose **last output** needs at most the budget (the paper: "the largest
possible number of channels f that results in a network with less than 2.2 billion MACs for
the last output"). MACs grow monotonically with the width, so the search keeps a bracket
``lo`` (widest known within budget) / ``hi`` (narrowest known over budget) and stops when
``hi == lo + 1``. Probes are exact graphcost traces at the dataset's resolution (fake tensors,
no forward pass); a least-squares quadratic in the width through the probes so far proposes
the next probe (MACs of a width-scaled conv net are ``a f^2 + b f`` up to rounding of derived
widths), with bisection as the fallback, so a point typically costs 3-5 traces. The row's
costs come from a full :func:`graphcost.analyze_trace` of the chosen width's trace.

Grid points are independent, so they run through an :class:`~graphcost.executor.Executor`;
each finished point goes to the :class:`~graphcost.store.ResultStore` at once, so an
interrupted sweep resumes and repeated points are read back, not recomputed.
"""
from __future__ import annotations

import ast
import itertools
import math
import re
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .errors import UserError

#: Columns every successful row has (``--format json`` rows carry these plus the grid parameters).
COST_COLUMNS = ("macs", "macs_total", "params", "graph_size_bytes", "latency_layers", "outputs")
DEFAULT_WIDTH_MAX = 4096
POINT_KIND = "sweep-point"


# --------------------------------------------------------------------------- parsing
_GRID_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RANGE = re.compile(r"^\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*$")


def _literal(text: str) -> Any:
    text = text.strip()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_grid(items: Sequence[str]) -> Tuple[Tuple[str, Tuple[Any, ...]], ...]:
    """``["N=1,2,4", "K=1..3"]`` -> ``(("N", (1, 2, 4)), ("K", (1, 2, 3)))``.

    Values are Python literals (``s=0.5,1.0``, ``mode=a,b``); ``A..B`` is an inclusive integer range.

    >>> parse_grid(["N=1,2,4", "K=1..3", "s=0.5,2.0"])
    (('N', (1, 2, 4)), ('K', (1, 2, 3)), ('s', (0.5, 2.0)))
    """
    grid: List[Tuple[str, Tuple[Any, ...]]] = []
    seen = set()
    for item in items:
        key, sep, raw = (item or "").partition("=")
        key = key.strip()
        if not sep or not _GRID_KEY.match(key):
            raise UserError(f"--grid expects KEY=V1,V2,... (e.g. N=1,2,4,8,16), got {item!r}")
        if key in seen:
            raise UserError(f"--grid names {key!r} twice; give all its values in one --grid {key}=V1,V2,...")
        seen.add(key)
        match = _RANGE.match(raw)
        if match:
            start, stop = int(match.group(1)), int(match.group(2))
            if stop < start:
                raise UserError(f"--grid {key}={raw.strip()} is an empty range; write {key}=LOW..HIGH")
            values = tuple(range(start, stop + 1))
        else:
            parts = [p.strip() for p in raw.split(",")]
            if not raw.strip() or any(p == "" for p in parts):
                raise UserError(f"--grid {key} needs comma-separated values without gaps (e.g. {key}=1,2,4), "
                                f"got {item!r}")
            values = tuple(_literal(p) for p in parts)
        if len(set(map(repr, values))) != len(values):
            raise UserError(f"--grid {key} repeats a value: {raw.strip()}")
        grid.append((key, values))
    return tuple(grid)


def grid_label(point: Mapping[str, Any]) -> str:
    """``{"N": 2, "L": 1}`` -> ``"N=2 L=1"``."""
    return " ".join(f"{k}={v}" for k, v in point.items())


# --------------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class SweepSpec:
    """What to sweep. Plain data: it hashes into store keys and travels to workers.

    ``grid`` is ordered (the first two parameters are the heat-map axes); ``fixed`` are the
    ``--param`` values every point shares; ``macs_budget`` switches the width search on for
    ``width_param`` (default ``f`` where the model has it); ``crossbar`` (rows, cols) adds the
    crossbar mapping columns, ``chip_arrays`` the fit / throughput on a chip of that many arrays.
    """

    model: str
    grid: Tuple[Tuple[str, Tuple[Any, ...]], ...]
    fixed: Tuple[Tuple[str, Any], ...] = ()
    dataset: Optional[str] = None
    input_shape: Optional[Tuple[int, ...]] = None
    shared: Optional[bool] = None
    macs_budget: Optional[float] = None
    width_param: Optional[str] = None
    width_min: int = 1
    width_max: int = DEFAULT_WIDTH_MAX
    crossbar: Optional[Tuple[int, int]] = None
    chip_arrays: Optional[int] = None
    depthwise: str = "dense"
    bytes_per_element: Optional[int] = None

    @property
    def grid_keys(self) -> Tuple[str, ...]:
        return tuple(k for k, _ in self.grid)

    def points(self) -> List[Dict[str, Any]]:
        """Every grid point, in grid order (the last parameter varies fastest)."""
        keys = self.grid_keys
        return [dict(zip(keys, values)) for values in itertools.product(*(v for _, v in self.grid))]


def resolve_spec(spec: SweepSpec) -> SweepSpec:
    """Check names against the model's signature and fill in the dataset, input shape and width parameter.

    Raises :class:`UserError` for an unknown model or parameter, a parameter both fixed and
    swept, a budget without a width parameter, or a width parameter that is also swept.
    """
    from .models import dataset_preset, model_entry

    if not spec.grid:
        raise UserError("give at least one --grid KEY=V1,V2,... to sweep over")
    if spec.macs_budget is not None and not (spec.macs_budget > 0 and math.isfinite(spec.macs_budget)):
        raise UserError(f"--macs-budget must be a positive number of MACs, got {spec.macs_budget:g}")
    entry = model_entry(spec.model)
    accepted = entry.parameters()
    takes_any = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
    names = sorted(k for k, p in accepted.items() if p.kind is not p.VAR_KEYWORD)
    fixed = dict(spec.fixed)
    for key in list(spec.grid_keys) + list(fixed):
        if key not in accepted and not takes_any:
            raise UserError(f"model {spec.model!r} has no parameter {key!r}; its parameters are: {', '.join(names)}")
    for key in spec.grid_keys:
        if key in fixed:
            raise UserError(f"{key!r} is both swept (--grid) and fixed (--param); keep one")
    if "shared" in spec.grid_keys and spec.shared is not None:
        raise UserError("'shared' is swept with --grid; drop --shared/--independent")
    if spec.shared is not None and "shared" not in accepted:
        raise UserError(f"model {spec.model!r} has no shared/independent variants; drop --shared/--independent")
    width = spec.width_param
    if spec.macs_budget is not None:
        if width is None:
            if "f" not in accepted:
                raise UserError(f"--macs-budget searches a width parameter, and {spec.model!r} has no 'f'; "
                                f"name one with --width-param (its parameters are: {', '.join(names)})")
            width = "f"
        if width not in accepted and not takes_any:
            raise UserError(f"--width-param {width!r} is not a parameter of {spec.model!r}; "
                            f"its parameters are: {', '.join(names)}")
        if width in spec.grid_keys or width in fixed:
            raise UserError(f"{width!r} is searched for the --macs-budget; drop it from --grid/--param "
                            f"(or drop --macs-budget to sweep it directly)")
        if not (1 <= spec.width_min <= spec.width_max):
            raise UserError(f"width bounds must satisfy 1 <= min <= max, got {spec.width_min}..{spec.width_max}")
    dataset = dataset_preset(spec.dataset or entry.default_dataset).name
    shape = tuple(spec.input_shape) if spec.input_shape else dataset_preset(dataset).input_shape
    return replace(spec, dataset=dataset, input_shape=shape, width_param=width if spec.macs_budget is not None
                   else None)


# --------------------------------------------------------------------------- one point
def point_task(spec: SweepSpec, point: Mapping[str, Any]) -> Dict[str, Any]:
    """The picklable work item of one grid point (a resolved spec is expected)."""
    return {
        "model": spec.model,
        "point": dict(point),
        "params": {**dict(spec.fixed), **dict(point)},
        "dataset": spec.dataset,
        "input_shape": list(spec.input_shape or ()),
        "shared": spec.shared,
        "macs_budget": spec.macs_budget,
        "width_param": spec.width_param,
        "width_min": spec.width_min,
        "width_max": spec.width_max,
        "crossbar": list(spec.crossbar) if spec.crossbar else None,
        "chip_arrays": spec.chip_arrays,
        "depthwise": spec.depthwise,
        "bytes_per_element": spec.bytes_per_element,
    }


def task_key(task: Mapping[str, Any]) -> str:
    """Store key of a work item: model, params, input, dataset, variant, budget and hardware spec."""
    from .store import result_key

    parts = {k: v for k, v in task.items() if k != "point"}
    return result_key(POINT_KIND, **parts)


def _build(task: Mapping[str, Any], params: Mapping[str, Any]):
    from .resolve import ModelSpec, build

    spec = ModelSpec(name=task["model"], dataset=task["dataset"], input_shape=tuple(task["input_shape"]),
                     params=dict(params), shared=task["shared"])
    return build(spec)


def _trace(task: Mapping[str, Any], params: Mapping[str, Any]):
    from .tracing import trace

    built = _build(task, params)
    return trace(built.module, built.input_shape)


def last_output_macs(t) -> int:
    """MACs the last output needs: the MACs of its ancestors in the execution DAG."""
    from .passes import macs, needed_calls

    return macs(t, needed_calls(t, t.outputs[-1]))


def _predict(known: Mapping[int, int], budget: float) -> Optional[int]:
    """Largest integer width whose fitted MACs stay within ``budget``.

    One probe: ``MACs ~ f^2`` through it. More: least squares of ``a f^2 + b f`` through all
    probes (rounding of derived widths such as ``f // 2`` makes the exact curve jitter, which a
    fit through only the nearest three points would amplify into a wild extrapolation).
    """
    import numpy as np

    def power_law() -> Optional[int]:
        f0, m0 = min(known.items(), key=lambda kv: abs(math.log(max(kv[1], 1)) - math.log(budget)))
        if m0 <= 0:
            return None
        return int(math.floor(f0 * math.sqrt(budget / m0) + 1e-9))

    if len(known) == 1:
        return power_law()
    xs = np.array(list(known), dtype=float)
    ys = np.array([known[k] for k in known], dtype=float)
    weights = 1.0 / np.maximum(ys, 1.0)  # relative residuals: every probe counts alike
    design = np.stack([xs ** 2, xs], axis=1) * weights[:, None]
    try:
        (a, b), *_ = np.linalg.lstsq(design, ys * weights, rcond=None)
    except np.linalg.LinAlgError:  # pragma: no cover - degenerate probes
        return power_law()
    if a <= 0 and b <= 0:
        return power_law()
    if abs(a) < 1e-12:
        return int(math.floor(budget / b + 1e-9)) if b > 0 else power_law()
    disc = b * b + 4 * a * budget
    if disc < 0:
        return power_law()
    root = (-b + math.sqrt(disc)) / (2 * a)
    return int(math.floor(root + 1e-9)) if math.isfinite(root) and root > 0 else power_law()


class InvalidWidth(Exception):
    """A probe's width that the model rejects (e.g. below its minimum); the search moves above it."""


@dataclass
class WidthSearch:
    """Result of :func:`widest_width`: ``width`` (None if even ``lo_bound`` is over budget), probes made."""

    width: Optional[int]
    probes: Dict[int, int] = field(default_factory=dict)
    capped: bool = False


def widest_width(probe: Callable[[int], int], budget: float, lo_bound: int = 1, hi_bound: int = DEFAULT_WIDTH_MAX,
                 start: int = 32) -> WidthSearch:
    """Largest integer ``w`` in ``[lo_bound, hi_bound]`` with ``probe(w) <= budget``, ``probe`` non-decreasing.

    Proves the answer by probing it and ``w + 1`` (unless ``w == hi_bound``). A probe may raise
    :class:`InvalidWidth` for widths below the model's minimum: the domain then starts above.

    >>> widest_width(lambda f: 3 * f * f + 5 * f, 1000).width   # 3*17^2+85 = 952, 3*18^2+90 = 1062
    17
    """
    known: Dict[int, int] = {}
    lo: Optional[int] = None  # widest known within budget
    hi: Optional[int] = None  # narrowest known over budget
    f = min(max(start, lo_bound), hi_bound)
    for _ in range(200):
        if f not in known:
            try:
                value = probe(f)
            except InvalidWidth:
                if any(k < f for k in known):
                    raise  # invalid above a valid width: not a lower bound of the domain
                lo_bound = f + 1  # widths up to f are invalid for the model: the domain starts above
                if lo_bound > hi_bound or (hi is not None and lo_bound >= hi):
                    return WidthSearch(None, known)
                f = lo_bound if hi is None else min(lo_bound, hi - 1)
                continue
            known[f] = value
            if value <= budget:
                lo = f if lo is None else max(lo, f)
            else:
                hi = f if hi is None else min(hi, f)
        if hi is not None and hi == lo_bound:
            return WidthSearch(None, known)
        if lo is not None and lo == hi_bound:
            return WidthSearch(lo, known, capped=True)
        if lo is not None and hi is not None and hi == lo + 1:
            return WidthSearch(lo, known)
        lower = lo_bound if lo is None else lo + 1
        upper = hi_bound if hi is None else hi - 1
        candidate = None
        guess = _predict(known, budget)
        if guess is not None:
            for option in (guess, guess + 1):
                if lower <= option <= upper and option not in known:
                    candidate = option
                    break
                if option < lower or option > upper:
                    continue
            if candidate is None and guess < lower and lower not in known:
                candidate = lower  # the fit undershoots: prove lo + 1 is over budget
            if candidate is None and guess > upper and upper not in known:
                candidate = upper
        if candidate is None:  # bisection fallback
            if lo is None:
                candidate = max(lower, min(upper, (lower + (hi if hi is not None else upper)) // 2))
            elif hi is None:
                candidate = min(upper, max(lower, 2 * lo))
            else:
                candidate = (lo + hi) // 2
            if candidate in known:
                candidate = next((w for w in range(lower, upper + 1) if w not in known), None)
                if candidate is None:  # pragma: no cover - bracket exhausted
                    return WidthSearch(lo, known)
        f = candidate
    raise RuntimeError("width search did not converge")  # pragma: no cover


def _mapping_columns(task: Mapping[str, Any], t) -> Dict[str, Any]:
    from .crossbar.mapping import map_trace
    from .crossbar.specs import ArraySpec

    rows, cols = task["crossbar"]
    mapping = map_trace(t, ArraySpec(int(rows), int(cols)), task.get("depthwise") or "dense")
    out: Dict[str, Any] = {"crossbar": f"{rows}x{cols}", "arrays_used": mapping.arrays_used,
                           "utilization": round(float(mapping.utilization), 6)}
    try:
        from .crossbar.perf import performance
        from .crossbar.specs import ChipSpec
    except ImportError:  # the perf module is optional for the arrays columns
        return out
    chip = ChipSpec(arrays=task.get("chip_arrays"))
    perf = performance(mapping, chip)
    for name in ("arrays_needed", "fits", "throughput_fps", "latency_s"):
        if hasattr(perf, name):
            value = getattr(perf, name)
            out[name] = value if not isinstance(value, float) else float(value)
    return out


def evaluate_point(task: Mapping[str, Any]) -> Dict[str, Any]:
    """Analyse one grid point (width search first if there is a budget). Top-level: runs in workers.

    Returns a JSON-ready row: the grid point, the width, ``status`` (``ok``, ``infeasible``,
    ``error``) with a ``reason`` when not ok, and the costs.
    """
    from .analysis import analyze_trace

    start_time = time.perf_counter()
    row: Dict[str, Any] = dict(task["point"])
    params = dict(task["params"])
    width = task.get("width_param")
    budget = task.get("macs_budget")
    traces = {}
    analyses = 0
    try:
        if budget is not None:
            _build(task, {**params, width: _start_width(task)})  # bad non-width params fail here, once

            def probe(w: int) -> int:
                nonlocal analyses
                try:
                    built = _build(task, {**params, width: w})
                except UserError as exc:
                    raise InvalidWidth(str(exc)) from None
                analyses += 1
                from .tracing import trace

                t = trace(built.module, built.input_shape)
                value = last_output_macs(t)
                if value <= float(budget) and all(w > kept for kept in traces):
                    traces.clear()  # keep one trace: the widest within budget so far
                    traces[w] = t
                return value

            search = widest_width(probe, float(budget), task["width_min"], task["width_max"],
                                  start=_start_width(task))
            if search.width is None:
                smallest = min(search.probes) if search.probes else None
                need = (f"even {width}={smallest} needs {search.probes[smallest]:.4g} MACs at the last output"
                        if smallest is not None else f"no valid {width} in {task['width_min']}..{task['width_max']}")
                row.update(status="infeasible", **{width: None},
                           reason=f"{need}, over the budget of {float(budget):.4g}")
                row.update(analyses=analyses, seconds=round(time.perf_counter() - start_time, 4))
                return row
            chosen = search.width
            params[width] = chosen
            row[width] = chosen
            row["macs_next_width"] = search.probes.get(chosen + 1)
            if search.capped:
                row["note"] = f"{width} capped at the search maximum {task['width_max']}"
            t = traces.get(chosen)
            if t is None:
                analyses += 1
                t = _trace(task, params)
        else:
            analyses += 1
            t = _trace(task, params)
        result = analyze_trace(t, name=task["model"], bytes_per_element=task.get("bytes_per_element"))
    except (UserError, InvalidWidth) as exc:
        row.update(status="error", reason=str(exc), analyses=analyses,
                   seconds=round(time.perf_counter() - start_time, 4))
        return row
    last = result.outputs[-1] if result.outputs else None
    row.update(
        status="ok",
        macs=int(last.macs) if last else int(result.macs),
        macs_total=int(result.macs),
        params=int(result.params),
        graph_size_bytes=int(result.graph_size_bytes),
        latency_layers=int(result.latency_layers),
        outputs=len(result.outputs),
        output_macs=[int(o.macs) for o in result.outputs],
        output_latency_layers=[int(o.latency_layers) for o in result.outputs],
        output_graph_size_bytes=[int(o.graph_size_bytes) for o in result.outputs],
    )
    if task.get("crossbar"):
        row.update(_mapping_columns(task, t))
    row.update(analyses=analyses, seconds=round(time.perf_counter() - start_time, 4))
    return row


def _start_width(task: Mapping[str, Any]) -> int:
    """First probe: the builder's default width if it has an integer one, else 32."""
    from .models import model_entry

    width = task["width_param"]
    param = model_entry(task["model"]).parameters().get(width)
    default = getattr(param, "default", None)
    if isinstance(default, int) and not isinstance(default, bool) and default > 0:
        return default
    return 32


# --------------------------------------------------------------------------- the sweep
@dataclass
class SweepResult:
    """Rows in grid order plus how they were obtained (``computed`` now, ``cached`` from the store)."""

    spec: SweepSpec
    rows: List[Dict[str, Any]]
    computed: int = 0
    cached: int = 0
    seconds: float = 0.0
    analyses: int = 0

    @property
    def failed(self) -> List[Dict[str, Any]]:
        return [r for r in self.rows if r.get("status") != "ok"]

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows)

    def to_dict(self) -> Dict[str, Any]:
        spec = asdict(self.spec)
        spec["grid"] = {k: list(v) for k, v in self.spec.grid}
        spec["fixed"] = dict(self.spec.fixed)
        return {"spec": spec, "rows": self.rows, "computed": self.computed, "cached": self.cached,
                "analyses": self.analyses, "seconds": round(self.seconds, 3)}


def flat_frame(rows: Sequence[Mapping[str, Any]]):
    """Rows as a DataFrame with list columns (``output_macs``, ...) joined by ';', as CSV wants them."""
    import pandas as pd

    return pd.DataFrame([{k: (";".join(str(x) for x in v) if isinstance(v, (list, tuple)) else v)
                          for k, v in r.items()} for r in rows])


def run_sweep(spec: SweepSpec, executor=None, store=None, progress: Optional[Callable[[int, int], None]] = None,
              evaluate: Callable[[Mapping[str, Any]], Dict[str, Any]] = evaluate_point) -> SweepResult:
    """Evaluate every grid point: stored points are read back, the rest go through ``executor``.

    Each computed row is stored as soon as it arrives (errors caused by bad parameters are not
    stored, so a fixed model is retried). ``progress(done, total)`` counts cached points too.
    """
    from .store import cached_map

    started = time.perf_counter()
    spec = resolve_spec(spec)
    tasks = [point_task(spec, p) for p in spec.points()]
    rows, computed = cached_map(evaluate, tasks, [task_key(t) for t in tasks], executor, store,
                                meta=lambda i: {"kind": POINT_KIND, "model": spec.model, "point": tasks[i]["point"]},
                                keep=lambda row: row.get("status") != "error", progress=progress)
    analyses = sum(int(rows[i].get("analyses", 0)) for i in computed)
    return SweepResult(spec, rows, computed=len(computed), cached=len(tasks) - len(computed),
                       seconds=time.perf_counter() - started, analyses=analyses)


def describe_failures(result: SweepResult, limit: int = 4) -> str:
    """One sentence naming the failed grid points and why (for a one-line CLI error)."""
    failed = result.failed
    keys = result.spec.grid_keys
    parts = []
    for row in failed[:limit]:
        label = " ".join(f"{k}={row.get(k)}" for k in keys)
        parts.append(f"{label} ({row.get('reason', row.get('status'))})")
    more = f"; and {len(failed) - limit} more" if len(failed) > limit else ""
    budget = result.spec.macs_budget
    head = (f"the MAC budget {budget:.4g} cannot be met at {len(failed)} of {len(result.rows)} grid points"
            if budget is not None and all(r.get("status") == "infeasible" for r in failed)
            else f"{len(failed)} of {len(result.rows)} grid points failed")
    hint = ("; raise --macs-budget, shrink the grid, or pass --skip-failed to drop them"
            if budget is not None else "; fix the grid or pass --skip-failed to drop them")
    return f"{head}: " + "; ".join(parts) + more + hint


# --------------------------------------------------------------------------- ranking
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


HIGHER_IS_BETTER = {"auc", "peak_miou", "miou", "throughput_fps", "utilization"}


def parse_metric(text: str) -> Tuple[str, bool]:
    """``"graph_size_bytes"`` -> (name, ascending); ``NAME:max`` / ``NAME:min`` choose the order."""
    name, _, order = text.partition(":")
    name = name.strip()
    if not name:
        raise UserError("--metric expects a column name, e.g. --metric auc or --metric graph_size_bytes:min")
    if order and order not in ("min", "max"):
        raise UserError(f"--metric order must be :min or :max, got {text!r}")
    ascending = (order == "min") if order else name not in HIGHER_IS_BETTER
    return name, ascending


def attach_accuracy(rows: List[Dict[str, Any]], table, grid_keys: Sequence[str], chance: float = 0.00828,
                    tolerance: float = 0.02) -> None:
    """Add ``auc``, ``peak_miou`` and ``discarded`` to rows from a per-output accuracy table.

    ``table`` (DataFrame) has the grid columns, ``output`` (1-based) and ``miou`` (fraction, or
    percent if any value exceeds 1). As in the paper (Sec. III-A): AUC of mIoU over the MACs of
    each output (Eq. 2, ``y0`` = chance mIoU), and a point whose peak mIoU is at most the best
    peak minus ``tolerance`` is discarded from the ranking.
    """
    missing = [c for c in list(grid_keys) + ["output", "miou"] if c not in table.columns]
    if missing:
        raise UserError(f"the accuracy table lacks the column(s) {', '.join(missing)}; it needs the grid "
                        f"parameters, output (1-based) and miou")
    table = table.copy()
    if (table["miou"] > 1).any():
        table["miou"] = table["miou"] / 100.0
    groups = {}
    for record in table.to_dict("records"):
        key = tuple(str(record[k]) for k in grid_keys)
        groups.setdefault(key, {})[int(record["output"])] = float(record["miou"])
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


def rank_rows(rows: List[Dict[str, Any]], metric: str) -> List[Dict[str, Any]]:
    """Sort ok rows by ``metric`` (and set ``rank`` from 1); rows without it or discarded go last, unranked."""
    name, ascending = parse_metric(metric)
    ok = [r for r in rows if r.get("status") == "ok"]
    if ok and not any(name in r for r in ok):
        known = sorted({k for r in ok for k, v in r.items() if isinstance(v, (int, float)) and not
                        isinstance(v, bool)})
        hint = " (auc needs --accuracy-table)" if name in ("auc", "peak_miou") else ""
        raise UserError(f"--metric {name!r} is not a column of the sweep{hint}; choose one of: {', '.join(known)}")
    rankable = [r for r in ok if r.get(name) is not None and not r.get("discarded")]
    rankable.sort(key=lambda r: r[name], reverse=not ascending)
    for i, r in enumerate(rankable, start=1):
        r["rank"] = i
    rest = [r for r in rows if r not in rankable]
    for r in rest:
        r["rank"] = None
    return rankable + rest

