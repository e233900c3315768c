"""The graphcost model zoo: ItNet, its baselines and related iterative networks.

One file per family, a builder per named variant (torchvision style). Every model is
written to trace with ``torch.fx`` and returns one output per iteration where it iterates.
A family file is imported when one of its models is first asked for (``manifest.py`` lists
which file holds which name): importing the zoo imports no torch.
"""
from .registry import (
    DATASETS,
    DatasetPreset,
    ModelEntry,
    dataset_preset,
    get_model,
    list_models,
    model_entry,
    register_model,
)

__all__ = [
    "DATASETS",
    "DatasetPreset",
    "ModelEntry",
    "dataset_preset",
    "get_model",
    "list_models",
    "model_entry",
    "register_model",
]
