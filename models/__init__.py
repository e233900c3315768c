"""The graphcost model zoo: ItNet, its baselines and related iterative networks.

One file per family, a builder per named variant (torchvision style). Every model is
written to trace with ``torch.fx`` and returns one output per iteration where it iterates.
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

# Importing a family registers its builders. Families are imported lazily-safe: a family
# file that is not there yet simply is not registered.
from importlib import import_module as _import_module

for _family in ("itnet", "enet", "espnetv2", "cgnet", "recunet", "iterative_resnet", "recurrent_seg", "digits_cnn",
                "vgg8"):
    try:
        _import_module(f"{__name__}.{_family}")
    except ModuleNotFoundError as _exc:  # pragma: no cover - only while a family is unwritten
        if _exc.name != f"{__name__}.{_family}":
            raise

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
