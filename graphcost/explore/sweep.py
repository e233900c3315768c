"""Design-space sweeps: a grid over a zoo model's parameters, a width search per grid point.

The paper's grid search (ItNet, Section III-A, Figs. A2/A3) as plain Python over the API::

    from graphcost.explore import SweepSpec, parse_grid, run_sweep
    from graphcost.runtime.executor import make_executor
    from graphcost.runtime.store import open_store

    spec = SweepSpec(model="itnet", grid=parse_grid(["N=1,2,4,8,16", "L=1,2,3,4", "K=1,2,3"]),
                     dataset="camvid", shared=True, macs_budget=2.2e9)
    with make_executor("local") as ex, open_store() as store:
        result = run_sweep(spec, ex, store)
    result.frame()      # one row per grid point: N, L, K, f, macs, params, graph_size_bytes, ...

The spec is declared once, as :class:`SweepSpec`; one grid point's work item is a
:class:`PointTask` (the resolved spec and the point), and the model it builds is a
:class:`graphcost.resolve.ModelSpec`, as everywhere else. For every grid point with a MAC budget,
the width search (:mod:`graphcost.explore.width`) finds the largest integer width (``f`` by
default) whose **last output** needs at most the budget. Probes are exact graphcost traces at the
dataset's resolution (fake tensors, no forward pass); the row's costs come from a full
:func:`graphcost.analyze_trace` of the chosen width's trace.

Grid points are independent, so they run through a :class:`~graphcost.runtime.executor.Executor`;
each finished point goes to the :class:`~graphcost.runtime.store.ResultStore` at once, so an
interrupted sweep resumes and repeated points are read back, not recomputed.
"""
from __future__ import annotations

import itertools
import math
import re
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import pandas as pd

from graphcost.analysis import analyze_trace
from graphcost.collector import collector_paused
from graphcost.errors import UserError, quiet_torch_logs
from graphcost.models import dataset_preset, model_entry
from graphcost.resolve import ModelSpec, build_for_shapes, direct_attributes, parse_literal
from graphcost.runtime.store import cached_map, result_key
from graphcost.tracing import trace

from .width import DEFAULT_WIDTH_MAX, ChannelScaling, InvalidWidth, last_output_macs, widest_width

POINT_KIND = "sweep-point"
#: Number columns of every ``ok`` row (besides the grid, the width and ``macs_next_width``), and those
#: ``crossbar`` adds (``arrays_used``, ``utilization``, then the :class:`Performance` fields).
COST_COLUMNS = ("macs", "macs_total", "params", "graph_size_bytes", "latency_layers", "outputs", "analyses",
                "seconds")
PERF_COLUMNS = ("arrays_needed", "fits", "throughput_fps", "latency_s")
MAPPING_COLUMNS = ("arrays_used", "utilization") + PERF_COLUMNS + ("energy_j", "power_w", "tops_per_w", "area_mm2")
#: Values one grid axis may have (a range is refused before it is materialised).
MAX_AXIS_VALUES = 10_000
#: Grid points a sweep runs without an explicit ``max_points=None`` (``graphcost sweep --yes``).
MAX_GRID_POINTS = 1_000_000
#: What a point's first trace imports that this module has not, imported before a local pool forks its workers,
#: once for all of them (:meth:`graphcost.runtime.executor.LocalExecutor.preload`): nothing. Models are built on
#: the meta device and costed on meta tensors, so no worker imports ``torch._dynamo`` (a second) unless one needs
#: the fake run; and torch's ``symbolic_shapes`` with sympy (a third of a second, imported by the first
#: ``torch._check`` of a meta kernel) is imported by a worker only where a point's op has no shape rule: preloaded,
#: every sweep would wait for it before its first point, whether or not a worker needs it.
WORKER_IMPORTS: Tuple[str, ...] = ()
#: ``depthwise`` strategy of the optional crossbar columns (``graphcost.crossbar.DEPTHWISE_STRATEGIES[0]``).
DEFAULT_DEPTHWISE = "dense"


# --------------------------------------------------------------------------- parsing
_GRID_KEY = re.compile(r"^(hw\.)?[A-Za-z_][A-Za-z0-9_]*$")  # hw.KEY: a hardware axis (graphcost.crossbar.hardware)
HW_PREFIX = "hw."
_RANGE = re.compile(r"^\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*$")


def parse_axis(text: str) -> Tuple[str, Tuple[Any, ...]]:
    """``"N=1,2,4"`` -> ``("N", (1, 2, 4))``: one swept parameter and its values.

    Values are Python literals (``s=0.5,1.0``, ``mode=a,b``); ``A..B`` is an inclusive integer range.

    >>> parse_axis("K=1..3"), parse_axis("s=0.5,2.0")
    (('K', (1, 2, 3)), ('s', (0.5, 2.0)))
    """
    key, sep, raw = (text or "").partition("=")
    key = key.strip()
    if not sep or not _GRID_KEY.match(key):
        raise UserError(f"a grid axis is KEY=V1,V2,... (e.g. N=1,2,4,8,16), got {text!r}")
    match = _RANGE.match(raw)
    if match:
        start, stop = int(match.group(1)), int(match.group(2))
        if stop < start:
            raise UserError(f"{key}={raw.strip()} is an empty range; write {key}=LOW..HIGH")
        if stop - start + 1 > MAX_AXIS_VALUES:
            raise UserError(f"{key}={raw.strip()} has {stop - start + 1:,} values; a grid axis may have at most "
                            f"{MAX_AXIS_VALUES:,}")
        values = tuple(range(start, stop + 1))
    else:
        parts = [p.strip() for p in raw.split(",")]
        if len(parts) > MAX_AXIS_VALUES:
            raise UserError(f"{key} has {len(parts):,} values; a grid axis may have at most {MAX_AXIS_VALUES:,}")
        if not raw.strip() or any(p == "" for p in parts):
            raise UserError(f"{key} needs comma-separated values without gaps (e.g. {key}=1,2,4), got {text!r}")
        values = tuple(parse_literal(p) for p in parts)
    if len(set(map(repr, values))) != len(values):
        raise UserError(f"{key} repeats a value: {raw.strip()}")
    return key, values


def check_grid(axes: Sequence[Tuple[str, Tuple[Any, ...]]]) -> Tuple[Tuple[str, Tuple[Any, ...]], ...]:
    """The axes as a grid, refusing a parameter named twice."""
    seen = set()
    for key, _ in axes:
        if key in seen:
            raise UserError(f"the grid names {key!r} twice; give all its values at once ({key}=V1,V2,...)")
        seen.add(key)
    return tuple(axes)


def parse_grid(items: Sequence[str]) -> Tuple[Tuple[str, Tuple[Any, ...]], ...]:
    """``["N=1,2,4", "K=1..3"]`` -> ``(("N", (1, 2, 4)), ("K", (1, 2, 3)))`` (see :func:`parse_axis`).

    >>> parse_grid(["N=1,2,4", "K=1..3", "s=0.5,2.0"])
    (('N', (1, 2, 4)), ('K', (1, 2, 3)), ('s', (0.5, 2.0)))
    """
    return check_grid([parse_axis(item) for item in items])


# --------------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class SweepSpec:
    """What to sweep. Plain data: it hashes into store keys and travels to workers.

    ``grid`` is ordered (the first two parameters are the heat-map axes); ``fixed`` are the
    parameters every point shares; ``macs_budget`` switches the width search on for
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
    depthwise: str = DEFAULT_DEPTHWISE
    bytes_per_element: Optional[int] = None

    @property
    def grid_keys(self) -> Tuple[str, ...]:
        return tuple(k for k, _ in self.grid)

    @property
    def size(self) -> int:
        """Grid points, counted without listing them."""
        return math.prod(len(values) for _, values in self.grid)

    def points(self) -> List[Dict[str, Any]]:
        """Every grid point, in grid order (the last parameter varies fastest)."""
        keys = self.grid_keys
        return [dict(zip(keys, values)) for values in itertools.product(*(v for _, v in self.grid))]

    def model_spec(self, params: Mapping[str, Any]) -> ModelSpec:
        """The model this sweep builds with ``params`` (grid point, fixed and searched values)."""
        shape = tuple(self.input_shape) if self.input_shape else None
        return ModelSpec(name=self.model, dataset=self.dataset, input_shape=shape, params=dict(params),
                         shared=self.shared)


def _check_width(spec: SweepSpec, accepted, takes_any: bool, names: str) -> Optional[str]:
    """The width parameter searched for the budget (None without a budget)."""
    if spec.macs_budget is None:
        return None
    width = spec.width_param
    if width is None:
        if "f" not in accepted:
            raise UserError(f"a MAC budget searches a width parameter, and {spec.model!r} has no 'f'; "
                            f"name the width parameter (its parameters are: {names})")
        width = "f"
    if width not in accepted and not takes_any:
        raise UserError(f"the width parameter {width!r} is not a parameter of {spec.model!r}; "
                        f"its parameters are: {names}")
    if width in spec.grid_keys or width in dict(spec.fixed):
        raise UserError(f"{width!r} is searched for the MAC budget; do not also sweep or fix it "
                        f"(or drop the budget to sweep it directly)")
    if not (1 <= spec.width_min <= spec.width_max):
        raise UserError(f"width bounds must satisfy 1 <= min <= max, got {spec.width_min}..{spec.width_max}")
    return width


class GridTooLarge(UserError):
    """A grid larger than the caller allowed: refused before any point is listed or run."""


def check_size(spec: SweepSpec, max_points: Optional[int] = MAX_GRID_POINTS) -> None:
    """Refuse a grid of more than ``max_points`` points (``None``: no limit), before anything is listed."""
    if max_points is not None and spec.size > max_points:
        raise GridTooLarge(f"the grid has {spec.size:,} points, more than the {max_points:,} a sweep runs unasked "
                        f"(each point is one to six traces); shrink the grid or confirm that you mean it")


def resolve_spec(spec: SweepSpec, max_points: Optional[int] = MAX_GRID_POINTS) -> SweepSpec:
    """Check names against the model's signature and fill in the dataset, input shape and width parameter.

    Raises :class:`UserError` for an unknown model or parameter, a parameter both fixed and
    swept, a budget without a width parameter, a width parameter that is also swept, or a grid
    larger than ``max_points``.
    """
    if not spec.grid:
        raise UserError("a sweep needs at least one grid parameter (KEY=V1,V2,...)")
    check_size(spec, max_points)
    if spec.chip_arrays is not None and spec.crossbar is None:
        raise UserError("a chip size (chip_arrays) needs the crossbar array size (crossbar) it is made of")
    if spec.macs_budget is not None and not (spec.macs_budget > 0 and math.isfinite(spec.macs_budget)):
        raise UserError(f"the MAC budget must be a positive number of MACs, got {spec.macs_budget:g}")
    entry = model_entry(spec.model)
    accepted = entry.parameters()
    takes_any = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
    names = ", ".join(sorted(k for k, p in accepted.items() if p.kind is not p.VAR_KEYWORD))
    fixed = dict(spec.fixed)
    model_keys = [k for k in spec.grid_keys if not k.startswith(HW_PREFIX)]
    if len(model_keys) < len(spec.grid_keys):
        # Lazy on purpose: the crossbar room is a plugin of the sweep, loaded only when asked for.
        from graphcost.crossbar.hardware import check_hardware_axes

        check_hardware_axes(spec.grid, spec.crossbar)
    for key in model_keys + list(fixed):
        if key not in accepted and not takes_any:
            raise UserError(f"model {spec.model!r} has no parameter {key!r}; its parameters are: {names}")
    for key in spec.grid_keys:
        if key in fixed:
            raise UserError(f"{key!r} is both swept and fixed; keep one")
    if "shared" in spec.grid_keys and spec.shared is not None:
        raise UserError("'shared' is swept in the grid; do not also choose shared or independent weights")
    if spec.shared is not None and "shared" not in accepted:
        raise UserError(f"model {spec.model!r} has no shared/independent variants")
    width = _check_width(spec, accepted, takes_any, names)
    dataset = dataset_preset(spec.dataset or entry.default_dataset).name
    shape = tuple(spec.input_shape) if spec.input_shape else dataset_preset(dataset).input_shape
    return replace(spec, dataset=dataset, input_shape=shape, width_param=width)


def row_columns(spec: SweepSpec, accuracy: bool = False) -> Tuple[str, ...]:
    """The number columns every ``ok`` row of the resolved ``spec`` has (``accuracy``: with Eq. 2's columns)."""
    width = (spec.width_param, "macs_next_width") if spec.width_param else ()
    mapping = MAPPING_COLUMNS if spec.crossbar or any(k.startswith(HW_PREFIX) for k in spec.grid_keys) else ()
    return tuple(spec.grid_keys) + width + COST_COLUMNS + mapping + (("auc", "peak_miou") if accuracy else ())


# --------------------------------------------------------------------------- one point
@dataclass(frozen=True)
class PointTask:
    """The picklable work item of one grid point: the resolved spec and the point's values (``memoise``:
    identical calls within a trace costed once, :mod:`graphcost.capture_memo`; not part of the key)."""

    spec: SweepSpec
    point: Tuple[Tuple[str, Any], ...]
    memoise: bool = True

    @property
    def params(self) -> Dict[str, Any]:
        """Fixed parameters and the point's model values (the point wins, though a resolved spec has no overlap)."""
        return {**dict(self.spec.fixed), **{k: v for k, v in self.point if not k.startswith(HW_PREFIX)}}

    @property
    def hardware(self) -> Dict[str, Any]:
        """The point's ``hw.`` values (hardware axes)."""
        return {k: v for k, v in self.point if k.startswith(HW_PREFIX)}

    def key(self) -> str:
        """Store key: model, params, input, dataset, variant, budget and hardware spec (not the grid)."""
        parts = {k: v for k, v in asdict(self.spec).items() if k not in ("grid", "fixed")}
        if self.hardware:
            parts["hardware"] = self.hardware
        return result_key(POINT_KIND, params=self.params, **parts)

    def meta(self) -> Dict[str, Any]:
        return {"kind": POINT_KIND, "model": self.spec.model, "point": dict(self.point)}


def point_task(spec: SweepSpec, point: Mapping[str, Any], memoise: bool = True) -> PointTask:
    """The work item of one grid point (a resolved spec is expected)."""
    return PointTask(spec, tuple(point.items()), memoise)


def _mapping_columns(task: PointTask, t, columns=None) -> Dict[str, Any]:
    """The point's crossbar columns; ``columns`` (a :class:`HardwareColumns` of ``t``) shares work between points."""
    # Lazy on purpose: the crossbar room is a plugin of the sweep, loaded only when asked for.
    from graphcost.crossbar.hardware import HardwareColumns, hardware

    spec = task.spec
    array, chip, tech = hardware(task.hardware, spec.crossbar, spec.chip_arrays)
    columns = columns or HardwareColumns(t, spec.depthwise or DEFAULT_DEPTHWISE)
    return columns(array, chip, tech)


def _start_width(spec: SweepSpec) -> int:
    """First probe: the builder's default width if it has an integer one, else 32."""
    param = model_entry(spec.model).parameters().get(spec.width_param)
    default = getattr(param, "default", None)
    if isinstance(default, int) and not isinstance(default, bool) and default > 0:
        return default
    return 32


class _Probe:
    """``probe(width) -> last-output MACs`` for the width search; keeps the widest trace within budget."""

    def __init__(self, task: PointTask) -> None:
        self.task = task
        self.analyses = 0
        self.kept: Dict[int, Any] = {}
        self.built: Dict[Optional[int], Any] = {}  # a model built to check the parameters, traced by the first probe
        self.scaling: Optional[ChannelScaling] = None  # the first trace's MACs by channels, for estimates
        self.scaled_width: Optional[int] = None  # the width of that first trace

    def build(self, width: Optional[int] = None):
        params = self.task.params if width is None else {**self.task.params, self.task.spec.width_param: width}
        return build_for_shapes(self.task.spec.model_spec(params))

    def trace(self, width: Optional[int] = None):
        built = self.built.pop(width, None) or self.build(width)
        self.analyses += 1
        return trace(built.module, built.call_inputs, memoise=self.task.memoise)

    def __call__(self, width: int) -> int:
        try:
            t = self.trace(width)
        except UserError as exc:
            raise InvalidWidth(str(exc)) from None
        value = last_output_macs(t)
        if self.scaling is None:
            self.scaling, self.scaled_width = ChannelScaling(t), width
        if value <= float(self.task.spec.macs_budget) and all(width > kept for kept in self.kept):
            for dropped in self.kept.values():
                dropped.release()
            self.kept = {width: t}  # keep one trace: the widest within budget so far
        else:
            t.release()
        return value

    def estimate(self, width: int) -> Optional[int]:
        """The last-output MACs at ``width`` predicted from the first trace: a build, no trace (kept for it)."""
        if self.scaling is None:
            return None
        if width == self.scaled_width:  # the first trace's own model: no build
            return self.scaling.total
        if width not in self.built:
            try:
                self.built[width] = self.build(width)
            except UserError as exc:
                raise InvalidWidth(str(exc)) from None
        return self.scaling(self.built[width].module)


def _search(task: PointTask, probe: _Probe, row: Dict[str, Any]):
    """Run the width search; fill ``row`` with the width (or the infeasibility) and return the trace or None."""
    spec = task.spec
    width, budget = spec.width_param, float(spec.macs_budget)
    start = _start_width(spec)
    probe.built[start] = probe.build(start)  # bad non-width params fail here, once
    search = widest_width(probe, budget, spec.width_min, spec.width_max, start=start, estimate=probe.estimate)
    if search.width is None:
        smallest = min(search.probes) if search.probes else None
        need = (f"even {width}={smallest} needs {search.probes[smallest]:.4g} MACs at the last output"
                if smallest is not None else f"no valid {width} in {spec.width_min}..{spec.width_max}")
        row.update(status="infeasible", **{width: None}, reason=f"{need}, over the budget of {budget:.4g}")
        return None
    chosen = search.width
    row[width] = chosen
    row["macs_next_width"] = search.probes.get(chosen + 1)
    if search.capped:
        row["note"] = f"{width} capped at the search maximum {spec.width_max}"
    kept = probe.kept.get(chosen)
    return kept if kept is not None else probe.trace(chosen)


def _cost_columns(result) -> Dict[str, Any]:
    last = result.outputs[-1] if result.outputs else None
    return dict(
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


def _architecture_row(task: PointTask, probe: "_Probe") -> Tuple[Dict[str, Any], Any]:
    """The model part of a point's row (grid values, width, costs) and the trace the costs came from (or None)."""
    spec = task.spec
    row: Dict[str, Any] = dict(task.point)
    try:
        with direct_attributes(), quiet_torch_logs():  # once for the search's builds and traces, not per each
            t = _search(task, probe, row) if spec.macs_budget is not None else probe.trace()
        if t is not None:
            row.update(_cost_columns(analyze_trace(t, name=spec.model, bytes_per_element=spec.bytes_per_element)))
    except (UserError, InvalidWidth) as exc:
        row.update(status="error", reason=str(exc))
        t = None
    return row, t


def _with_hardware(task: PointTask, row: Dict[str, Any], t, columns=None) -> Dict[str, Any]:
    """``row`` plus the point's crossbar columns (when the sweep maps), or the mapping's error."""
    if t is not None and (task.spec.crossbar or task.hardware):
        try:
            row.update(_mapping_columns(task, t, columns))
        except UserError as exc:
            row.update(status="error", reason=str(exc))
    return row


def evaluate_point(task: PointTask) -> Dict[str, Any]:
    """Analyse one grid point (width search first if there is a budget). Top-level: runs in workers.

    Returns a JSON-ready row: the grid point, the width, ``status`` (``ok``, ``infeasible``,
    ``error``) with a ``reason`` when not ok, and the costs. This is the plain path: every point is
    traced and mapped on its own (:func:`evaluate_architecture` shares that work between points).
    """
    with collector_paused():  # see evaluate_architecture
        start_time = time.perf_counter()
        probe = _Probe(task)
        row, t = _architecture_row(task, probe)
        row = _with_hardware(task, row, t)
        if t is not None:
            t.release()
        row.update(analyses=probe.analyses, seconds=round(time.perf_counter() - start_time, 4))
        return row


@dataclass(frozen=True)
class ArchitectureTask:
    """The picklable work item of one architecture: the grid points that differ only in ``hw.`` values."""

    spec: SweepSpec
    points: Tuple[Tuple[Tuple[str, Any], ...], ...]


def architecture_tasks(tasks: Sequence[PointTask], indices: Sequence[int]) -> List[Tuple[ArchitectureTask, List[int]]]:
    """``tasks[i]`` for ``i`` in ``indices`` grouped by architecture (their model values), the likely largest
    first (:func:`size_hint`; ties in first-seen order)."""
    groups: Dict[str, List[int]] = {}
    for i in indices:
        model_values = tuple((k, v) for k, v in tasks[i].point if not k.startswith(HW_PREFIX))
        groups.setdefault(repr(model_values), []).append(i)
    ordered = sorted(groups.values(), key=lambda members: -size_hint(tasks[members[0]].point))
    return [(ArchitectureTask(tasks[members[0]].spec, tuple(tasks[i].point for i in members)), members)
            for members in ordered]


def size_hint(point: Sequence[Tuple[str, Any]]) -> float:
    """The product of a point's positive numeric model values: a guess at its relative work (a sweep's depths,
    iterations and widths grow its model), for the order work items are handed out in. Largest first, a pool's
    last items are its smallest, and no worker waits long for the last one (the 60-point ItNet grid ends with
    N=16, its slowest points). The order changes no row: results are kept by grid index.

    >>> size_hint((("N", 16), ("L", 2), ("shared", True), ("hw.adc_bits", 8))), size_hint((("act", "relu"),))
    (32.0, 1.0)
    """
    numbers = [v for k, v in point if not k.startswith(HW_PREFIX) and type(v) in (int, float) and v > 0]
    return float(math.prod(numbers))


def evaluate_architecture(task: ArchitectureTask) -> List[Dict[str, Any]]:
    """One row per point of an architecture: traced, width-searched and analysed once, mapped once per array
    geometry and one performance per array and chip (:class:`graphcost.crossbar.hardware.HardwareColumns`),
    every hardware point re-using that work.
    Top-level: runs in workers. Each row equals :func:`evaluate_point`'s but for the bookkeeping columns:
    ``analyses`` counts the traces on the first row only, ``seconds`` is the time each row took.

    The cycle collector waits while a work item runs: its builds and traces die by reference counting
    (``Trace.release``), and what cycles remain are collected once, at its end (a pool worker collects after
    every item), not scanned again and again while alive (the independent 60-point grid 5 % less CPU, an
    item-by-item interleaved A/B)."""
    with collector_paused():
        return _evaluate_architecture(task)


def _evaluate_architecture(task: ArchitectureTask) -> List[Dict[str, Any]]:
    start_time = time.perf_counter()
    first = PointTask(task.spec, task.points[0])
    probe = _Probe(first)
    base, t = _architecture_row(first, probe)
    columns = None
    if t is not None and (task.spec.crossbar or first.hardware):
        from graphcost.crossbar.hardware import HardwareColumns  # lazy: the crossbar room is a plugin of the sweep

        columns = HardwareColumns(t, task.spec.depthwise or DEFAULT_DEPTHWISE)
    model_part = {k: v for k, v in base.items() if not k.startswith(HW_PREFIX)}
    rows, analyses = [], probe.analyses
    for point in task.points:
        row = {**dict(point), **model_part}
        row = _with_hardware(PointTask(task.spec, point), row, t, columns)
        now = time.perf_counter()
        row.update(analyses=analyses, seconds=round(now - start_time, 4))
        rows.append(row)
        start_time, analyses = now, 0
    if t is not None:
        t.release()
    return rows


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
        return pd.DataFrame(self.rows)

    def to_dict(self) -> Dict[str, Any]:
        spec = asdict(self.spec)
        spec["grid"] = {k: list(v) for k, v in self.spec.grid}
        spec["fixed"] = dict(self.spec.fixed)
        return {"spec": spec, "rows": self.rows, "computed": self.computed, "cached": self.cached,
                "analyses": self.analyses, "seconds": round(self.seconds, 3)}


def flat_frame(rows: Sequence[Mapping[str, Any]]):
    """Rows as a DataFrame with list columns (``output_macs``, ...) joined by ';', as CSV wants them."""
    return pd.DataFrame([{k: (";".join(str(x) for x in v) if isinstance(v, (list, tuple)) else v)
                          for k, v in r.items()} for r in rows])


def run_sweep(spec: SweepSpec, executor=None, store=None, progress: Optional[Callable[[int, int], None]] = None,
              evaluate: Callable[[PointTask], Dict[str, Any]] = evaluate_point,
              max_points: Optional[int] = MAX_GRID_POINTS, memoise: bool = True) -> SweepResult:
    """Evaluate every grid point of a sweep: stored points are read back, the rest run on ``executor``.

    Parameters
    ----------
    spec : SweepSpec
        What to sweep; it is checked and completed by :func:`resolve_spec` first.
    executor : graphcost.runtime.executor.Executor, optional
        Where the points run (default: inline, in this process).
    store : graphcost.runtime.store.ResultStore, optional
        Where finished points are kept (default: nowhere). Each computed row is stored as soon as it
        arrives, so an interrupted sweep resumes; ``status == "error"`` rows are not: a fixed model is retried.
    progress : callable, optional
        ``progress(done, total)`` after each point, stored points included.
    evaluate : callable, optional
        ``evaluate(task) -> row`` for one :class:`PointTask` (default :func:`evaluate_point`).
    max_points : int or None, optional
        Refuse a larger grid before anything runs (default :data:`MAX_GRID_POINTS`; ``None``: no limit).
    memoise : bool, optional
        With the default ``evaluate``: points that differ only in ``hw.`` values share one work item
        (:func:`evaluate_architecture`: one trace, width search and analysis per architecture, one
        tiling per array geometry; identical calls in a trace costed once). ``False``: every point and
        call on its own (the plain path; rows equal but for the ``analyses`` / ``seconds`` bookkeeping).

    Returns
    -------
    SweepResult
        One row per grid point, in grid order (``status`` ``ok``, ``infeasible`` or ``error``),
        with how many points were computed now or read from the store.

    Raises
    ------
    graphcost.UserError
        An unknown model or parameter, a parameter both swept and fixed, a MAC budget that is
        not positive, a budget without a width parameter to search, or too large a grid.

    Examples
    --------
    >>> from graphcost.explore import SweepSpec, parse_grid, run_sweep
    >>> spec = SweepSpec(model="itnet", grid=parse_grid(["N=1,2"]), fixed=(("L", 1), ("K", 1)),
    ...                  input_shape=(1, 3, 32, 48), shared=True, macs_budget=5e6)
    >>> result = run_sweep(spec)
    >>> [(row["N"], row["f"], row["macs"] <= 5e6 < row["macs_next_width"]) for row in result.rows]
    [(1, 53, True), (2, 45, True)]
    """
    started = time.perf_counter()
    spec = resolve_spec(spec, max_points)
    if executor is not None:
        executor.preload(WORKER_IMPORTS)
    tasks = [point_task(spec, p, memoise) for p in spec.points()]
    grouped = memoise and evaluate is evaluate_point
    rows, computed = cached_map(evaluate_architecture if grouped else evaluate, tasks, [t.key() for t in tasks],
                                executor, store, meta=lambda i: tasks[i].meta(),
                                keep=lambda row: row.get("status") != "error", progress=progress,
                                batch=(lambda todo: architecture_tasks(tasks, todo)) if grouped else None)
    analyses = sum(int(rows[i].get("analyses", 0)) for i in computed)
    return SweepResult(spec, rows, computed=len(computed), cached=len(tasks) - len(computed),
                       seconds=time.perf_counter() - started, analyses=analyses)


def describe_failures(result: SweepResult, limit: int = 4) -> str:
    """One sentence naming the failed grid points and why."""
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
    return f"{head}: " + "; ".join(parts) + more
