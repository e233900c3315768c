"""Design-space exploration: grid sweeps, the width search and the ItNet paper's ranking.

* :mod:`.sweep` — :class:`SweepSpec` (the one declaration of a sweep), :func:`run_sweep`.
* :mod:`.width` — :func:`widest_width`: the widest width within a MAC budget.
* :mod:`.ranking` — Eq. 2's AUC of mIoU over MACs, peak-mIoU discarding, :func:`rank_rows`, :func:`pareto_front`.

Exploration calls the core (``graphcost.analyze_trace``) and the runtime (executor, store); it
never counts a cost itself, and the core never imports it.
"""
from .ranking import (CHANCE_MIOU, HIGHER_IS_BETTER, attach_accuracy, auc, check_accuracy_table, check_metric, check_table,
                      pareto_front, parse_metric, parse_pareto, rank_rows, ranked_rows)
from .sweep import (COST_COLUMNS, MAPPING_COLUMNS, MAX_GRID_POINTS, POINT_KIND, GridTooLarge, PointTask, SweepResult,
                    SweepSpec, check_grid, describe_failures, evaluate_point, flat_frame, parse_axis, parse_grid, point_task, resolve_spec, row_columns, run_sweep)
from .width import DEFAULT_WIDTH_MAX, InvalidWidth, WidthSearch, last_output_macs, widest_width

__all__ = [
    "SweepSpec", "SweepResult", "PointTask", "run_sweep", "resolve_spec", "evaluate_point", "point_task",
    "parse_grid", "parse_axis", "check_grid", "describe_failures", "flat_frame", "POINT_KIND", "MAX_GRID_POINTS",
    "GridTooLarge",
    "widest_width", "WidthSearch", "InvalidWidth", "last_output_macs", "DEFAULT_WIDTH_MAX",
    "auc", "attach_accuracy", "check_metric", "row_columns", "COST_COLUMNS", "MAPPING_COLUMNS", "check_table", "check_accuracy_table", "rank_rows", "ranked_rows", "parse_metric", "HIGHER_IS_BETTER", "CHANCE_MIOU",
    "parse_pareto", "pareto_front",
]
