"""Language models on the chip: energy per generated token and tokens/s against the context length.

Each model is mapped with ``--generate P+G`` twice, once with attention on the digital unit and
once in gain-cell arrays (:func:`graphcost.crossbar.run.run_map`); this module only draws the
``generation.by_context`` lists they return: a) energy per token, b) tokens per second, each
against the context (cached tokens), one line per model and attention. PNG, SVG and a CSV.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

import pandas as pd

from graphcost.crossbar.generation import GenerateSpec, context_note, decoder_config
from graphcost.crossbar.mapping import ATTENTION_KINDS
from graphcost.crossbar.run import MapRequest, run_map
from graphcost.crossbar.specs import ArraySpec, ChipSpec
from graphcost.crossbar.tech import TechSpec
from graphcost.resolve import ModelSpec, build_for_shapes

from .common import figure_writers, pyplot, write_files

#: line style per attention kind
_STYLE = {"digital": "-", "gain-cell": "--"}


def check(specs: Sequence[ModelSpec], generate: GenerateSpec) -> List[str]:
    """Refuse, before any mapping, a model that does not generate tokens or whose positions ``generate``
    exceeds (:func:`~graphcost.crossbar.generation.context_note`); the notes of those it runs past their
    trained context. Each model is built on the meta device only."""
    notes: List[str] = []
    for spec in specs:
        built = build_for_shapes(spec)
        decoder_config(built.module, built.label)
        notes.extend(filter(None, [context_note(built.module, generate)]))
    return notes


def run_model(spec: ModelSpec, array: ArraySpec, chip: ChipSpec, tech: TechSpec, generate: GenerateSpec
              ) -> Dict[str, Dict[str, Any]]:
    """``graphcost map MODEL --generate`` under each attention kind: the JSON ``generation`` of each."""
    return {attention: run_map(MapRequest(spec, array, chip=chip, tech=tech, generate=generate,
                                          attention=attention)).to_dict()["generation"]
            for attention in ATTENTION_KINDS}


def frame(labels: Sequence[str], results: Sequence[Dict[str, Dict[str, Any]]]) -> pd.DataFrame:
    """One row per model, attention and context: seconds and energy per token, tokens/s."""
    rows: List[Dict[str, Any]] = []
    for label, by_attention in zip(labels, results):
        for attention, gen in by_attention.items():
            for point in gen["by_context"]:
                rows.append({"model": label, "attention": attention, "context": point["context"],
                             "s_per_token": point["s_per_token"], "energy_j_per_token": point["energy_j_per_token"],
                             "tokens_per_s": gen["batch"] / point["s_per_token"]})
    return pd.DataFrame(rows)


def figure(points: pd.DataFrame, title: str):
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(7.2, 2.8))
    for i, ((model, attention), rows) in enumerate(points.groupby(["model", "attention"], sort=False)):
        colour = f"C{list(points['model'].unique()).index(model)}"
        a.plot(rows["context"], rows["energy_j_per_token"] * 1e6, _STYLE[attention], color=colour,
               label=f"{model}, {attention}")
        b.plot(rows["context"], rows["tokens_per_s"], _STYLE[attention], color=colour, label=f"{model}, {attention}")
    a.set_ylabel("energy per generated token (uJ)")
    a.set_title("a) energy per token vs context", loc="left", fontsize=7.5)
    b.set_ylabel("tokens/s")
    b.set_title("b) tokens/s vs context", loc="left", fontsize=7.5)
    for ax in (a, b):
        ax.set_xlabel("context (cached tokens)")
        ax.set_yscale("log")
        ax.legend(fontsize=6, frameon=False)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return fig


def write(out_dir: str, points: pd.DataFrame, title: str) -> List[str]:
    """``llm.png``, ``llm.svg`` and ``llm.csv`` in ``out_dir`` (all or nothing)."""
    fig = figure(points, title)
    try:
        return write_files(out_dir, figure_writers(fig, "llm", points))
    finally:
        pyplot().close(fig)
