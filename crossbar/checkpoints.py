"""Checkpoints: loading a user's state dict (:func:`load_weights`, ``weights_only=True``, one clear
:class:`~graphcost.UserError` for a missing, unreadable or mismatching file) and the checkpoints
graphcost ships (:data:`SHIPPED`: float and hardware-aware weights of the default ItNet, digits-cnn
and tiny-gpt in ``crossbar/weights/``, each with a JSON file of how ``graphcost train`` made it).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
from torch import nn

from graphcost.errors import UserError, first_line

__all__ = ["ShippedModel", "SHIPPED", "SHIPPED_CONFIG", "WEIGHT_KINDS", "check_weights", "load_weights",
           "default_weights_path", "shipped_checkpoint_for", "shipped_model", "weights_folder"]


#: The model configuration the shipped ItNet checkpoints were trained for (``graphcost map itnet``).
SHIPPED_CONFIG: Dict[str, Any] = {"shared": True, "N": 16, "L": 3, "K": 1, "f": 51, "classes": 11}
SHIPPED_NAME = "itnet_camvid_synthetic.pt"
#: The kinds of shipped checkpoint ``--weights`` names: trained in float, or hardware-aware (HWA).
WEIGHT_KINDS = ("float", "hwa")


@dataclass(frozen=True)
class ShippedModel:
    """A zoo model with shipped checkpoints: its name, the builder arguments and preset they fit,
    and the checkpoint file of each kind (in ``crossbar/weights/``)."""

    name: str
    config: Dict[str, Any]
    datasets: Tuple[Optional[str], ...]
    files: Dict[str, str]
    #: the ``--data`` it was trained on and is evaluated on, and how many samples an evaluation takes by default
    data: str = "synthetic"
    samples: int = 8


SHIPPED = (
    ShippedModel("itnet", SHIPPED_CONFIG, (None, "camvid"),
                 {"float": SHIPPED_NAME, "hwa": "itnet_camvid_synthetic_hwa.pt"}),
    ShippedModel("digits-cnn", {"classes": 10, "width": 16}, (None, "digits"),
                 {"float": "digits_cnn_float.pt", "hwa": "digits_cnn_hwa.pt"}, "digits", 360),
    ShippedModel("tiny-gpt", {"layers": 2, "width": 192, "heads": 4}, (None, "pydoc"),
                 {"float": "tiny_gpt_float.pt", "hwa": "tiny_gpt_hwa.pt"}, "pydoc", 64),
    # trained with the ACT ponder cost, then fine-tuned with the loss at every iteration too
    # (graphcost train iterative-resnet --data digits --ponder 0.01 [--full-depth-weight 1]; its JSON)
    ShippedModel("iterative-resnet", {"shared": True}, ("digits",), {"float": "iterative_resnet_digits.pt"},
                 "digits", 360),
)


def shipped_model(name: str) -> Optional[ShippedModel]:
    """The :class:`ShippedModel` of zoo model ``name`` (``None`` if graphcost ships no weights for it)."""
    return next((s for s in SHIPPED if s.name == name), None)


def weights_folder() -> Path:
    return Path(__file__).resolve().parent / "weights"


def default_weights_path() -> Path:
    """The shipped ItNet checkpoint (default ItNet, CamVid preset, trained on the synthetic set)."""
    return weights_folder() / SHIPPED_NAME


def shipped_checkpoint_for(model_name: str, params: Optional[Mapping[str, Any]] = None,
                           dataset: Optional[str] = None, kind: str = "float") -> Optional[Path]:
    """The shipped checkpoint of ``kind`` (``"float"`` or ``"hwa"``) if ``model_name`` with ``params``
    is a model graphcost ships weights for (the default ItNet, digits-cnn), else ``None``.

    ``params`` are the builder keyword arguments the user gave (``None`` values = defaults);
    ``dataset`` the preset (``None`` or the model's own).

    >>> shipped_checkpoint_for("itnet", {"N": 16}).name
    'itnet_camvid_synthetic.pt'
    >>> shipped_checkpoint_for("itnet", {"N": 8}) is None, shipped_checkpoint_for("enet") is None
    (True, True)
    >>> shipped_checkpoint_for("digits-cnn").name
    'digits_cnn_float.pt'
    """
    if kind not in WEIGHT_KINDS:
        raise ValueError(f"kind must be one of {WEIGHT_KINDS}, got {kind!r}")
    for shipped in SHIPPED:
        if shipped.name != model_name or dataset not in shipped.datasets:
            continue
        for key, value in (params or {}).items():
            want = shipped.config.get(key)
            if value is not None and (key not in shipped.config or want != value or type(value) is not type(want)):
                return None
        if kind not in shipped.files:
            return None
        path = weights_folder() / shipped.files[kind]
        return path if path.is_file() else None
    return None


def check_weights(text: str) -> str:
    """A ``--weights`` value: a shipped kind (``float``, ``hwa``) or the path of an existing file."""
    if text in WEIGHT_KINDS or os.path.isfile(text):
        return text
    raise UserError(f"weights are {' or '.join(WEIGHT_KINDS)} (a shipped checkpoint) or a state dict file; "
                    f"{text!r} is neither")


def load_weights(model: nn.Module, path) -> nn.Module:
    """Load the state dict in ``path`` into ``model`` (strict); returns ``model``.

    Accepts a plain state dict or a dict holding one under ``"state_dict"`` / ``"model"``; a
    ``module.`` prefix (DataParallel) is stripped. Raises :class:`~graphcost.UserError` with one
    sentence for a missing or unreadable file, or one that does not fit the model.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"weights file {path!r} does not exist; pass a state dict saved with "
                        f"torch.save(model.state_dict(), FILE)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"cannot read weights file {path!r} ({first_line(exc)[:120]}); it must be a state dict saved "
                        f"with torch.save(model.state_dict(), FILE)") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                       for k, v in obj.items()):
        raise UserError(f"weights file {path!r} does not hold a state dict (a mapping of parameter names to "
                        f"tensors); save one with torch.save(model.state_dict(), FILE)")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    expected = model.state_dict()
    missing = [k for k in expected if k not in obj]
    unexpected = [k for k in obj if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first {missing[0]!r})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first {unexpected[0]!r})")
        raise UserError(f"weights file {path!r} does not fit the model: {' and '.join(parts)} keys; was it saved "
                        f"from the same model with the same parameters?")
    for key, value in obj.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise UserError(f"weights file {path!r} does not fit the model: {key!r} has shape "
                            f"{tuple(value.shape)}, the model expects {tuple(expected[key].shape)}")
    model.load_state_dict(obj, strict=True)
    return model
