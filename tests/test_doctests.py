"""The examples in the docstrings are part of the documentation: they must run as written."""
import doctest
import importlib

import pytest

MODULES = [
    "graphcost", "graphcost.ops", "graphcost.schema", "graphcost.aten_costs", "graphcost.inputs", "graphcost.tracing", "graphcost.analysis", "graphcost.resolve", "graphcost.render",
    "graphcost.export", "graphcost.passes.params", "graphcost.passes.macs", "graphcost.passes.graph_size",
    "graphcost.passes.latency", "graphcost.models.registry", "graphcost.crossbar.specs", "graphcost.crossbar.mapping",
    "graphcost.crossbar.perf", "graphcost.crossbar.tiling", "graphcost.crossbar.accuracy", "graphcost.crossbar.sim.convert",
    "graphcost.crossbar.sim.quantization", "graphcost.crossbar.sim.noise", "graphcost.cli_options",
    "graphcost.explore.sweep", "graphcost.explore.width", "graphcost.explore.ranking", "graphcost.reports.cli",
    "graphcost.crossbar.tech", "graphcost.crossbar.energy", "graphcost.models.vgg8", "graphcost.crossbar.hardware",
    "graphcost.crossbar.metrics", "graphcost.crossbar.data", "graphcost.crossbar.data.base", "graphcost.crossbar.data.text",
    "graphcost.crossbar.data.synthetic", "graphcost.crossbar.data.digits", "graphcost.crossbar.checkpoints",
    "graphcost.models.tiny_gpt",
    "graphcost.crossbar.generation",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
