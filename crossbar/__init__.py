"""Crossbar (in-memory computing) mapping and simulation.

* :mod:`.specs` — ``ArraySpec``, ``ChipSpec``, ``NoiseSpec`` (frozen, validated) and the CLI parsers.
* :mod:`.mapping` — ``map_trace`` / ``map_model``: tiles, utilisation and MVMs per unique weight layer.
* :mod:`.perf` — ``performance``: fit, pipelined throughput, latency per output, rewrites, replication.
* :mod:`.tech`, :mod:`.energy` — ``TechSpec`` presets / TOML; ``energy`` and ``area`` of a ``Performance``.
* :mod:`.tiling` — layer geometry and tiles (the one tiler).
* :mod:`.sim`, :mod:`.data`, :mod:`.metrics`, :mod:`.checkpoints`, :mod:`.accuracy` — the noisy
  simulated forward (``simulate(model, array, noise, t_seconds=...)``, the analogue of aihwkit's
  ``convert_to_analog``), the data sources by task, the metrics, the shipped checkpoints and the
  evaluation loop (imported on first use: ``graphcost.crossbar.evaluate_accuracy`` works).

The formulas are in ``docs/crossbar.md``.
"""
from importlib import import_module as _import_module

from .mapping import CallStage, LayerMapping, ModelMapping, OutputStage, map_model, map_trace
from .tiling import LayerGeometry, Tiling, geometry_of_module, geometry_of_weight, tile_grouped, tile_layer, tile_matrix
from .energy import AreaReport, EnergyReport, LayerEnergy
from .perf import LayerPerf, OutputPerf, Performance, performance
from .tech import HARDWARE_PRESETS, TECH_PRESETS, TechSpec, load_tech
from .specs import (DEPTHWISE_STRATEGIES, NOISE_PRESETS, ArraySpec, ChipSpec, NoiseSpec, parse_crossbar,
                    parse_noise)

# names of the simulation side, resolved lazily so importing the mapping never pays for it
_LAZY = {
    "CrossbarModel": "sim",
    "simulate": "sim.convert",
    "parse_data": "data",
    "DataSource": "data",
    "AccuracyConfig": "accuracy",
    "AccuracyResult": "accuracy",
    "evaluate_accuracy": "accuracy",
    "load_weights": "accuracy",
    "train": "training",
    "HWASpec": "sim.hwa",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(_import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ArraySpec", "ChipSpec", "NoiseSpec", "DEPTHWISE_STRATEGIES", "NOISE_PRESETS", "parse_crossbar", "parse_noise",
    "ModelMapping", "LayerMapping", "CallStage", "OutputStage", "map_model", "map_trace", "tile_matrix", "tile_grouped", "tile_layer",
    "LayerGeometry", "Tiling", "geometry_of_module", "geometry_of_weight",
    "Performance", "LayerPerf", "OutputPerf", "performance",
    "TechSpec", "TECH_PRESETS", "HARDWARE_PRESETS", "load_tech", "EnergyReport", "AreaReport",
    "LayerEnergy",
]
