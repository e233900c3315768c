"""Model specs: turn what a user names (zoo name, ``torchvision:NAME``, ``timm:NAME``,
``hf:MODEL_TYPE[:TASK]``, ``pkg.mod:callable``) into a module.

The CLI parses its options into a :class:`ModelSpec`; ``build`` does the rest. Nothing here
traces or counts.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, ContextManager, Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from .collector import SharedSwitch, collector_paused
from .errors import UserError, first_line
from .inputs import InputSpec

DEFAULT_INPUT = (1, 3, 224, 224)


@dataclass(frozen=True)
class ModelSpec:
    """What to build and at which input shape (``input_shape=None``: the model's default).

    ``inputs`` holds typed or named inputs (``--input input_ids=1x128:int64``), each
    ``(name or None, InputSpec)``; a single plain image shape stays in ``input_shape``.
    """

    name: str = "itnet"
    dataset: Optional[str] = None
    input_shape: Optional[Tuple[int, ...]] = None
    params: Dict[str, Any] = field(default_factory=dict)
    shared: Optional[bool] = None
    inputs: Tuple[Tuple[Optional[str], Any], ...] = ()  #: an InputSpec, or a tuple of them (a list input)


@dataclass(frozen=True)
class BuiltModel:
    module: nn.Module
    input_shape: Tuple[int, ...]
    label: str
    dataset: Optional[str]
    #: typed / named inputs for ``analyze`` (None: one float input of ``input_shape``)
    inputs: Any = None

    @property
    def call_inputs(self) -> Any:
        """What to pass to :func:`graphcost.analyze` / :func:`graphcost.trace` as ``inputs``."""
        return self.input_shape if self.inputs is None else self.inputs


#: Longest literal a model parameter or grid value may be (a width, a tuple of iterations: a few characters).
MAX_LITERAL_CHARS = 1000


def parse_literal(text: str) -> Any:
    """A Python literal, else the text itself; a value too long or too deeply nested is refused.

    >>> parse_literal("(3, 8)"), parse_literal("fast"), parse_literal("-1.5")
    ((3, 8), 'fast', -1.5)
    """
    text = text.strip()
    if len(text) > MAX_LITERAL_CHARS:
        raise UserError(f"a parameter value may have at most {MAX_LITERAL_CHARS} characters, got {len(text)}")
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    except (RecursionError, MemoryError):
        raise UserError(f"parameter value {text[:20]!r}... is nested too deeply to read") from None


def parse_param(text: str) -> Tuple[str, Any]:
    """``"f=51"`` -> ``("f", 51)``; values are Python literals, else plain strings.

    >>> parse_param("N=16"), parse_param("mode=fast"), parse_param("iters=(3,8)")
    (('N', 16), ('mode', 'fast'), ('iters', (3, 8)))
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise UserError(f"a model parameter is KEY=VALUE with a Python identifier as KEY, got {text!r}")
    raw = raw.strip()
    if raw == "":
        raise UserError(f"parameter {key} has no value; write {key}=VALUE")
    return key, parse_literal(raw)


def parse_params(items: Sequence[str]) -> Dict[str, Any]:
    return dict(parse_param(item) for item in items)


#: Elements an input may have: shapes beyond this overflow torch's storage-size arithmetic.
MAX_INPUT_ELEMENTS = 2 ** 40
_SHAPE = re.compile(r"^\s*\d+(\s*[xX,]\s*\d+)*\s*$")


def parse_input_shape(text: str, channels: int = 3) -> Tuple[int, ...]:
    """``"512x1024"`` -> ``(1, 3, 512, 1024)``; ``CxHxW`` and ``NxCxHxW`` are taken as given.

    >>> parse_input_shape("360x480"), parse_input_shape("1x1x28x28")
    ((1, 3, 360, 480), (1, 1, 28, 28))
    """
    if not _SHAPE.match(text or "") or len(text) > 64:
        raise UserError(f"an input shape is HxW (e.g. 512x1024), got {text[:64]!r}")
    dims = tuple(int(d) for d in re.split(r"\s*[xX,]\s*", text.strip()))
    if any(d <= 0 for d in dims):
        raise UserError(f"input dimensions must be positive, got {text!r}")
    if math.prod(dims) * channels > MAX_INPUT_ELEMENTS:
        raise UserError(f"input {text!r} has more than {MAX_INPUT_ELEMENTS:.3g} elements; no tensor that large exists")
    if len(dims) == 2:
        return (1, channels) + dims
    if len(dims) == 3:
        return (1,) + dims
    if len(dims) == 4:
        return dims
    raise UserError(f"an input shape is HxW, CxHxW or NxCxHxW, got {text!r}")


_DTYPES = {name: getattr(torch, name) for name in (
    "float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")}
_DTYPES.update({"float": torch.float32, "half": torch.float16, "double": torch.float64, "long": torch.int64,
                "int": torch.int32})
_INPUT = re.compile(r"^\s*(?:(?P<name>[A-Za-z_]\w*)\s*=)?\s*(?P<dims>[^:=]+?)\s*(?::\s*(?P<dtype>\w+))?\s*$")


_LIST = re.compile(r"^\s*(?:(?P<name>[A-Za-z_]\w*)\s*=)?\s*\[(?P<items>[^\[\]=]*)\]\s*$")


def parse_input(text: str) -> Tuple[Optional[str], Any]:
    """``[NAME=]DIMS[:DTYPE]``: HxW and CxHxW are an image (batch 1, 3 channels for HxW);
    a value with a dtype, or with 1 or 4+ dims, is that exact tensor. ``[NAME=][DIMS; DIMS...]``
    is one argument holding a list of exact tensors (a torchvision detector's list of images).

    >>> parse_input("512x1024"), parse_input("input_ids=1x128:int64")
    ((None, InputSpec(shape=(1, 3, 512, 1024), dtype=None)), ('input_ids', InputSpec(shape=(1, 128), dtype=torch.int64)))
    >>> parse_input("[3x320x320]")
    (None, (InputSpec(shape=(3, 320, 320), dtype=None),))
    """
    listed = _LIST.match(text or "")
    if listed:
        items = [item for item in listed["items"].split(";") if item.strip()]
        if not items or len(items) > MAX_LIST_INPUTS:
            raise UserError(f"a list input holds 1 to {MAX_LIST_INPUTS} tensors [DIMS; DIMS...], got {text[:64]!r}")
        return listed["name"], tuple(_exact_input(item.strip(), text) for item in items)
    match = _INPUT.match(text or "")
    if not match or not _SHAPE.match(match["dims"]):
        raise UserError(f"an input is [NAME=]DIMS[:DTYPE] (e.g. 512x1024 or input_ids=1x128:int64), got {text!r}")
    dims = tuple(int(d) for d in re.split(r"\s*[xX,]\s*", match["dims"].strip()))
    if any(d <= 0 for d in dims):
        raise UserError(f"input dimensions must be positive, got {text!r}")
    dtype = None
    if match["dtype"]:
        if match["dtype"] not in _DTYPES:
            raise UserError(f"unknown dtype {match['dtype']!r} in {text!r}; use one of {', '.join(_DTYPES)}")
        dtype = _DTYPES[match["dtype"]]
    elif len(dims) in (2, 3):
        dims = parse_input_shape(match["dims"])
    return match["name"], InputSpec(dims, dtype)


#: most tensors one list input may hold
MAX_LIST_INPUTS = 64


def _exact_input(item: str, text: str) -> InputSpec:
    """One tensor of a list input: ``DIMS[:DTYPE]`` taken as given (no image batch added)."""
    match = _INPUT.match(item)
    if not match or match["name"] or not _SHAPE.match(match["dims"]):
        raise UserError(f"a list input is [DIMS; DIMS...] (e.g. [3x320x320]), got {text[:64]!r}")
    dims = tuple(int(d) for d in re.split(r"\s*[xX,]\s*", match["dims"].strip()))
    if any(d <= 0 for d in dims):
        raise UserError(f"input dimensions must be positive, got {text!r}")
    if match["dtype"] and match["dtype"] not in _DTYPES:
        raise UserError(f"unknown dtype {match['dtype']!r} in {text!r}; use one of {', '.join(_DTYPES)}")
    return InputSpec(dims, _DTYPES[match["dtype"]] if match["dtype"] else None)


def input_fields(parsed: Sequence[Tuple[Optional[str], Any]]) -> Dict[str, Any]:
    """``ModelSpec`` fields for parsed inputs: one plain image shape stays ``input_shape``."""
    if not parsed:
        return {"input_shape": None, "inputs": ()}
    if len(parsed) == 1 and parsed[0][0] is None and isinstance(parsed[0][1], InputSpec) and \
            parsed[0][1].dtype is None:
        return {"input_shape": parsed[0][1].shape, "inputs": ()}
    names = [name for name, _ in parsed if name is not None]
    if len(names) != len(set(names)):
        raise UserError(f"an input name is given twice: {', '.join(names)}")
    return {"input_shape": None, "inputs": tuple(parsed)}


def call_inputs(inputs: Sequence[Tuple[Optional[str], Any]]) -> Any:
    """Parsed inputs as ``analyze`` takes them: unnamed ones positional, named ones keywords (a list
    input a list).

    >>> call_inputs([(None, (InputSpec((3, 8, 8)),))])
    ([InputSpec(shape=(3, 8, 8), dtype=None)],)
    """
    args = tuple(_as_list(spec) for name, spec in inputs if name is None)
    kwargs = {name: _as_list(spec) for name, spec in inputs if name is not None}
    return args + ((kwargs,) if kwargs else ())


def _as_list(value):
    return list(value) if isinstance(value, tuple) else value


def build(spec: ModelSpec) -> BuiltModel:
    """Build the module a spec names, with its input shape."""
    if spec.name.startswith("torchvision:"):
        built = _build_torchvision(spec)
    elif spec.name.startswith("timm:"):
        built = _build_timm(spec)
    elif spec.name.startswith("hf:"):
        built = _build_hf(spec)
    elif ":" in spec.name:
        built = _build_callable(spec)
    else:
        built = _build_zoo(spec)
    if spec.inputs:
        first = spec.inputs[0][1]
        built = replace(built, inputs=call_inputs(spec.inputs), input_shape=(first[0] if isinstance(first, tuple)
                                                                             else first).shape)
    return built


class BuildFailed(UserError):
    """The model's factory raised while building it."""


def call_factory(label: str, factory, params: Dict[str, Any]) -> nn.Module:
    """``factory(**params)``; parameters it does not take, or anything it raises, become one line."""
    try:
        inspect.signature(factory).bind(**params)
    except TypeError as exc:
        raise UserError(f"cannot call {label} with {params}: {exc}") from None
    except ValueError:  # no signature to check (a builtin): let the call decide
        pass
    try:
        module = factory(**params)
    except Exception as exc:  # the factory is the user's code: whatever it raises is a build failure
        raise BuildFailed(f"building {label} failed: {type(exc).__name__}: {first_line(exc, empty='')}") from None
    if not isinstance(module, nn.Module):
        raise UserError(f"{label} returned {type(module).__name__}, not a torch.nn.Module")
    return module


def _build_timm(spec: ModelSpec) -> BuiltModel:
    _no_shared(spec)
    name = spec.name.split(":", 1)[1]
    try:
        import timm  # lazy: an optional extra, needed only for timm: models
    except ImportError:
        raise UserError("timm is not installed; pip install 'graphcost[timm]' to analyze timm models") from None
    if spec.params.get("pretrained"):
        raise UserError("graphcost never downloads weights; drop the pretrained parameter")
    if not timm.is_model(name):
        raise UserError(f"timm has no model {name!r}; see timm.list_models()")
    module = call_factory(spec.name, timm.create_model, {"model_name": name, "pretrained": False, **spec.params})
    shape, dataset = _input_for(spec)
    if not spec.input_shape and not spec.dataset:
        size = getattr(module, "pretrained_cfg", {}).get("input_size")
        shape = (1,) + tuple(size) if size else shape
    return BuiltModel(module, shape, spec.name, dataset)


#: ``hf:MODEL_TYPE:TASK`` -> the transformers auto class building that task's model from a config
HF_TASKS = {"base": "AutoModel", "causal-lm": "AutoModelForCausalLM", "masked-lm": "AutoModelForMaskedLM",
            "seq-cls": "AutoModelForSequenceClassification", "image-cls": "AutoModelForImageClassification",
            "semantic-seg": "AutoModelForSemanticSegmentation", "seq2seq-lm": "AutoModelForSeq2SeqLM",
            "speech-seq2seq": "AutoModelForSpeechSeq2Seq"}
#: tokens a text model is given when no input is named (``input_ids=1x128:int64``)
HF_TEXT_TOKENS = 128


def _build_hf(spec: ModelSpec) -> BuiltModel:
    """A transformers model from its config alone (``AutoConfig.for_model``): random weights, no download."""
    _no_shared(spec)
    if spec.dataset:
        raise UserError(f"{spec.name!r} has no dataset preset; give its inputs instead")
    model_type, _, task = spec.name[len("hf:"):].partition(":")
    task = task or "base"
    if task not in HF_TASKS:
        raise UserError(f"unknown hf task {task!r}; use one of {', '.join(HF_TASKS)}")
    try:
        import transformers  # lazy: an optional extra, needed only for hf: models
    except ImportError:
        raise UserError("transformers is not installed; pip install 'graphcost[hf]' to analyze hf: models") from None
    if model_type not in transformers.CONFIG_MAPPING:
        raise UserError(f"transformers has no model type {model_type!r}; see transformers.CONFIG_MAPPING")
    params = dict(spec.params)
    if params.pop("pretrained", None) or "name_or_path" in params:
        raise UserError("graphcost never downloads weights; drop the pretrained parameter")
    # a cost of one forward pass: no key-value cache returned (export cannot carry a Cache object)
    params.setdefault("use_cache", False)
    config = _hf_config(spec.name, transformers, model_type, params)
    module = call_factory(spec.name, getattr(transformers, HF_TASKS[task]).from_config, {"config": config})
    module.register_forward_hook(hf_predictions)  # its outputs (anytime exits) are its predictions only
    inputs = None if spec.input_shape else _hf_inputs(module, config)
    shape = spec.input_shape or next(iter(inputs.values())).shape
    return BuiltModel(module, shape, spec.name, None, inputs)


#: fields of a transformers output that are not predictions: the encoder's state a seq2seq model passes
#: along for reuse (``encoder_last_hidden_state``), and per-layer states and attention maps it returns when asked
_HF_AUXILIARY = re.compile(r"^encoder_last_hidden_state$|hidden_states$|attentions$")


def hf_predictions(module: nn.Module, args, output):
    """Forward hook of a transformers model: its output without the fields that are not predictions (so
    Whisper's outputs are its logits, not its logits and its encoder's last state); ``None`` (unchanged)
    when there are none or nothing else.

    >>> from collections import OrderedDict
    >>> out = OrderedDict(logits=1, encoder_last_hidden_state=2)
    >>> list(hf_predictions(None, (), out))
    ['logits']
    """
    if not isinstance(output, dict):  # a tuple (return_dict=False): its fields have no names to tell them by
        return None
    kept = {key: value for key, value in output.items() if not _HF_AUXILIARY.search(key)}
    if len(kept) in (0, len(output)):
        return None
    return type(output)(**kept)


def _hf_config(label: str, transformers, model_type: str, params: Dict[str, Any]):
    try:
        return transformers.AutoConfig.for_model(model_type, **params)
    except Exception as exc:  # a config rejecting a parameter: the user's input
        raise BuildFailed(f"building {label} failed: {type(exc).__name__}: {first_line(exc, empty='')}") from None


def _hf_inputs(module: nn.Module, config) -> Dict[str, InputSpec]:
    """Default inputs from the model itself: its ``main_input_name`` and its config.

    Token ids (1x128, at most the config's positions) for text, pixel values at the config's image
    size for images, log-mel features of the config's length for Whisper-like speech models, one
    second of raw audio for wav2vec2-like ones; a multimodal model (a config with a text and a
    vision part, as CLIP) gets both, an encoder-decoder its decoder token ids too.
    """
    main = getattr(module, "main_input_name", "input_ids")
    takes = _forward_arguments(module)
    text, vision = getattr(config, "text_config", None), getattr(config, "vision_config", None)
    inputs: Dict[str, InputSpec] = {}
    if main == "input_ids" or (text is not None and "input_ids" in takes):
        inputs["input_ids"] = InputSpec((1, _tokens(text or config)), torch.int64)
    if main == "pixel_values" or (vision is not None and "pixel_values" in takes):
        inputs["pixel_values"] = _hf_image(vision or config)
    if main == "input_features":
        inputs[main] = _hf_features(config)
    if main == "input_values":
        inputs[main] = InputSpec((1, HF_AUDIO_RATE_HZ))  # one second of audio at the feature extractor's rate
    if not inputs:
        raise UserError(f"graphcost has no default input for {type(module).__name__} (main input {main!r}); "
                        f"give its inputs")
    if getattr(config, "is_encoder_decoder", False) and "decoder_input_ids" in takes:
        decoder_positions = getattr(config, "max_target_positions", None) or _tokens(config)
        inputs["decoder_input_ids"] = InputSpec((1, min(HF_TEXT_TOKENS, decoder_positions)), torch.int64)
    return {main: inputs.pop(main), **inputs} if main in inputs else inputs


#: samples per second of a raw-audio model's default input (wav2vec2, HuBERT: their feature extractors' rate)
HF_AUDIO_RATE_HZ = 16_000


def _forward_arguments(module: nn.Module) -> set:
    try:
        return set(inspect.signature(module.forward).parameters)
    except (TypeError, ValueError):
        return set()


def _tokens(config) -> int:
    """Tokens of a default text input: 128, or fewer when the model has fewer positions."""
    positions = getattr(config, "max_position_embeddings", None)
    return min(HF_TEXT_TOKENS, positions) if isinstance(positions, int) and positions > 0 else HF_TEXT_TOKENS


def _hf_image(config) -> InputSpec:
    side = getattr(config, "image_size", 224)
    side = tuple(side) if isinstance(side, (tuple, list)) else (side, side)
    return InputSpec((1, getattr(config, "num_channels", 3)) + side)


def _hf_features(config) -> InputSpec:
    """Log-mel features of the length the encoder takes: Whisper's two stride-2-free frames per position."""
    mel_bins = getattr(config, "num_mel_bins", 80)
    positions = getattr(config, "max_source_positions", 1500)
    return InputSpec((1, mel_bins, 2 * positions))


def _build_zoo(spec: ModelSpec) -> BuiltModel:
    from graphcost import models  # lazy: the zoo imports every model family; other sources need none

    entry = models.model_entry(spec.name)
    params = dict(spec.params)
    if spec.shared is not None:
        if "shared" not in entry.parameters():
            raise UserError(f"model {spec.name!r} has no shared/independent variants; drop --shared/--independent")
        params["shared"] = spec.shared
    preset = models.dataset_preset(spec.dataset or entry.default_dataset)
    module = models.get_model(spec.name, dataset=preset.name, **params)
    shape = spec.input_shape or preset.input_shape
    inputs = (InputSpec(shape, torch.int64),) if preset.tokens else None  # token ids, not images
    return BuiltModel(module, shape, spec.name, preset.name, inputs)


def _input_for(spec: ModelSpec) -> Tuple[Tuple[int, ...], Optional[str]]:
    if spec.input_shape:
        return spec.input_shape, spec.dataset
    if spec.dataset:
        from graphcost import models  # lazy: see _build_zoo

        return models.dataset_preset(spec.dataset).input_shape, spec.dataset
    return DEFAULT_INPUT, None


def _no_shared(spec: ModelSpec) -> None:
    if spec.shared is not None:
        raise UserError(f"{spec.name!r} has no shared/independent variants; drop --shared/--independent")


def _build_torchvision(spec: ModelSpec) -> BuiltModel:
    _no_shared(spec)
    name = spec.name.split(":", 1)[1]
    try:
        import torchvision  # lazy: an optional package, needed only for torchvision: models
    except ImportError:
        raise UserError("torchvision is not installed; pip install torchvision to analyze torchvision models") \
            from None
    try:
        builder = torchvision.models.get_model_builder(name)
    except ValueError:
        raise UserError(f"torchvision has no model {name!r}; see torchvision.models.list_models()") from None
    params = {"weights": None, **spec.params}
    if "weights_backbone" in inspect.signature(builder).parameters:
        params.setdefault("weights_backbone", None)
    if params.get("weights") is not None or params.get("weights_backbone") is not None:
        raise UserError("graphcost never downloads weights; drop the weights parameter")
    module = call_factory(spec.name, builder, params)
    shape, dataset = _input_for(spec)
    return BuiltModel(module, shape, spec.name, dataset)


def _build_callable(spec: ModelSpec) -> BuiltModel:
    _no_shared(spec)
    module_name, _, attr = spec.name.partition(":")
    try:
        mod = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the user's module failing while importing
        raise UserError(f"cannot import {module_name!r}: {exc}") from None
    factory = getattr(mod, attr, None)
    if factory is None or not callable(factory):
        raise UserError(f"{module_name!r} has no callable {attr!r}")
    module = call_factory(spec.name, factory, dict(spec.params))
    shape, dataset = _input_for(spec)
    return BuiltModel(module, shape, spec.name, dataset)


#: The in-place initialisers of ``torch.nn.init`` (``kaiming_uniform_``, ``zeros_``, ...) that :func:`no_init` skips.
_INITIALISERS = tuple(name for name in dir(nn.init) if name.endswith("_") and not name.startswith("_")
                      and callable(getattr(nn.init, name)))
#: torch's layers whose ``reset_parameters`` only fills their parameters and buffers with values (and computes
#: the bounds of those values): :func:`no_init` skips it where they are all on the meta device.
_RESETTING_LAYERS = tuple(layer for layer in (
    nn.modules.conv._ConvNd, nn.Linear, nn.Bilinear, nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm,
    getattr(nn, "RMSNorm", None), nn.Embedding, nn.EmbeddingBag, nn.PReLU, nn.modules.rnn.RNNBase,
    nn.modules.rnn.RNNCellBase) if layer is not None)


def _skipping_meta(original):
    """``original`` (an initialiser), but a no-op on a meta tensor, whose values do not exist anyway."""
    def initialise(tensor, *args, **kwargs):
        if isinstance(tensor, torch.Tensor) and tensor.is_meta:
            return tensor
        return original(tensor, *args, **kwargs)

    return initialise


def _skipping_meta_reset(original):
    """``original`` (a layer's ``reset_parameters``), but a no-op where all the layer's own tensors (those it
    resets: the layers of :data:`_RESETTING_LAYERS` have no children) are meta tensors."""
    def reset_parameters(self, *args, **kwargs):
        if _all_meta(self._parameters) and _all_meta(self._buffers):
            return None
        return original(self, *args, **kwargs)

    return reset_parameters


#: torch-function handling off (modes such as ``torch.device("meta")`` included) around reads of tensor attributes
_NO_TORCH_FUNCTION = torch._C.DisableTorchFunction


def _all_meta(tensors: Dict[str, Optional[torch.Tensor]]) -> bool:
    with _NO_TORCH_FUNCTION():  # a read: past the meta-device mode, which costs ~1 us per tensor attribute read
        for t in tensors.values():
            if t is not None and not t.is_meta:
                return False
    return True


def no_init() -> ContextManager[None]:
    """Inside the block, parameters and buffers on the meta device are not initialised.

    Filling a meta tensor computes nothing but still dispatches (a ``uniform_`` on meta is decomposed
    into several ops), and a layer's ``reset_parameters`` computes the bounds first: together over
    half of building ItNet on the meta device. Inside the block ``torch.nn.init``'s initialisers leave
    meta tensors alone, and so does the ``reset_parameters`` of torch's layers (conv, linear, norms,
    embeddings, RNNs; :data:`_RESETTING_LAYERS`) whose tensors are all meta. Shapes, dtypes and modules
    are what they would be; only values, which a meta tensor has not, are skipped. Real tensors are
    initialised as ever, and everything is restored as the block ends, exception or not (patched in the
    module and the classes, so a layer's ``init.kaiming_uniform_(...)`` sees them; a model that imported
    an initialiser by name keeps the original, which is only slower). Blocks may nest and overlap in
    threads: the first to open patches, the last to close restores.
    """
    return _NO_INIT()


def _patch_initialisers() -> tuple:
    """Swap in the meta-skipping initialisers and resets; the originals, for :func:`_restore_initialisers`."""
    originals = ({name: getattr(nn.init, name) for name in _INITIALISERS},
                 {layer: layer.__dict__["reset_parameters"] for layer in _RESETTING_LAYERS})
    for name, original in originals[0].items():
        setattr(nn.init, name, _skipping_meta(original))
    for layer, original in originals[1].items():
        layer.reset_parameters = _skipping_meta_reset(original)
    return originals


def _restore_initialisers(originals: tuple) -> None:
    initialisers, resets = originals
    for name, original in initialisers.items():
        setattr(nn.init, name, original)
    for layer, original in resets.items():
        layer.reset_parameters = original


#: :func:`no_init`'s switch: the first block to open patches, the last to close restores.
_NO_INIT = SharedSwitch(_patch_initialisers, _restore_initialisers)


#: value types ``nn.Module.__setattr__`` stores as a plain attribute unless the name is one of the module's
#: parameters, children or buffers (exact types: a subclass, a Parameter, a Buffer or a Module takes torch's path)
_PLAIN_VALUES = frozenset({int, float, bool, str, type(None), tuple, list, dict, torch.dtype, torch.device})


def _direct_setattr(original):
    """``nn.Module.__setattr__`` (``original``), but three common assignments done at once, where torch's method
    ends for them after checks that cannot fail there (its Python-level ``isinstance`` checks against
    ``Parameter``, ``Module`` and ``Buffer`` and ``register_parameter``'s were a third of building a model):

    * a plain value to a name the module does not hold as a parameter, child or buffer: stored as an attribute;
    * a ``Parameter`` (exactly, no subclass; a leaf) to a fresh name (not an attribute, buffer, child or class
      attribute of the module), no global parameter-registration hook: stored in ``_parameters``;
    * a module to a fresh name (not an attribute, parameter or buffer), no global module-registration hook:
      stored in ``_modules``.

    Anything else (a name to be moved from one kind to another, a hook to call, an error to raise) takes
    torch's own method."""
    def __setattr__(self, name: str, value) -> None:
        kind, owned = type(value), self.__dict__
        params, modules, buffers = owned.get("_parameters"), owned.get("_modules"), owned.get("_buffers")
        if kind in _PLAIN_VALUES:
            if (params is None or name not in params) and (modules is None or name not in modules) and \
                    (buffers is None or name not in buffers):
                object.__setattr__(self, name, value)
                return
        # (before Module.__init__ there are no containers yet: torch says what to do)
        elif params is not None and modules is not None and buffers is not None and \
                _fresh(self, name, owned, params, modules, buffers):
            if kind is nn.Parameter and _is_leaf(value) and not _hooked("_global_parameter_registration_hooks"):
                params[name] = value
                return
            if isinstance(value, nn.Module) and not _hooked("_global_module_registration_hooks"):
                modules[name] = value
                return
        original(self, name, value)

    return __setattr__


def _is_leaf(tensor: torch.Tensor) -> bool:
    with _NO_TORCH_FUNCTION():  # (see _all_meta)
        return tensor.grad_fn is None


def _fresh(module: nn.Module, name: str, owned: dict, params: dict, modules: dict, buffers: dict) -> bool:
    """Whether ``name`` is a valid name not yet taken on ``module`` in any way torch's ``__setattr__`` and
    ``register_parameter`` would look at (instance attribute, parameter, child, buffer, class attribute)."""
    return type(name) is str and name and "." not in name and name not in owned and name not in params and \
        name not in modules and name not in buffers and name not in owned["_non_persistent_buffers_set"] and \
        not hasattr(type(module), name)


def _hooked(registry: str) -> bool:
    """Whether torch's global registration hooks ``registry`` hold any (looked up at each use: torch may rebind it)."""
    return bool(getattr(nn.modules.module, registry))


def _direct_init(original):
    """``nn.Module.__init__`` (``original``), but for a call without arguments (every layer's ``super().__init__()``)
    of a class that defines none of the attributes it sets, the module's dict filled at once from a template: the
    values torch's own ``__init__`` leaves (taken from a fresh module as the patch starts, fresh containers of
    each kind), in its order, where torch assigns each through ``super().__setattr__`` (a tenth of a build)."""
    template = vars(nn.Module())
    if not all(value is None or type(value) is bool or (isinstance(value, (dict, set)) and not value)
               for value in template.values()):
        return original  # a torch whose modules start with other state: its own __init__ only
    plan = tuple((name, type(value) if isinstance(value, (dict, set)) else (lambda value=value: value))
                 for name, value in template.items())
    log_usage, plain_classes = torch._C._log_api_usage_once, {}

    def __init__(self, *args, **kwargs) -> None:
        cls = type(self)
        plain = plain_classes.get(cls)
        if plain is None:
            plain = plain_classes[cls] = not any(hasattr(cls, name) for name, _ in plan)
        if args or kwargs or self.call_super_init or not plain:
            original(self, *args, **kwargs)
            return
        log_usage("python.nn_module")
        owned = self.__dict__
        for name, make in plan:
            owned[name] = make()

    return __init__


def _patch_module_methods():
    originals = nn.Module.__dict__["__setattr__"], nn.Module.__dict__["__init__"]
    nn.Module.__setattr__ = _direct_setattr(originals[0])
    nn.Module.__init__ = _direct_init(originals[1])
    return originals


def _restore_module_methods(originals) -> None:
    nn.Module.__setattr__, nn.Module.__init__ = originals


#: :func:`direct_attributes`' switch: the first block to open patches, the last to close restores.
_DIRECT_ATTRIBUTES = SharedSwitch(_patch_module_methods, _restore_module_methods)


def direct_attributes() -> ContextManager[None]:
    """Inside the block, ``nn.Module.__setattr__`` stores a plain value (a number, string, tuple, dtype, ...)
    under a name that is not a parameter, child or buffer of the module, and a parameter or a module under a
    fresh name, directly, as torch's own method would after its checks (:func:`_direct_setattr`); every other
    assignment takes torch's method. ``nn.Module.__init__`` without arguments fills the module's dict as torch's
    would (:func:`_direct_init`). Restored as the block ends, exception or not. Blocks may nest and overlap in
    threads (:class:`SharedSwitch`); patching costs a fraction of a millisecond (every subclass's slot is
    updated), so work that builds many models (a sweep's work item) opens one block around them all.

    >>> with direct_attributes():
    ...     conv = nn.Conv2d(3, 8, 3, device="meta")
    ...     conv.bias = None  # a parameter's name: torch's path
    >>> conv.stride, conv.bias, "bias" in conv._parameters, nn.Module.__setattr__.__qualname__
    ((1, 1), None, True, 'Module.__setattr__')
    >>> nn.Module.__init__.__qualname__
    'Module.__init__'
    """
    return _DIRECT_ATTRIBUTES()


def build_for_shapes(spec: ModelSpec) -> BuiltModel:
    """:func:`build` on the meta device: parameters have shapes but no storage, so a huge width costs nothing.

    For tracing, analysis and mapping, which only read shapes (parameters are not initialised:
    :func:`no_init`). A model that cannot be built on the meta device (its constructor computes
    with its own weights) is built normally.
    """
    with collector_paused():  # thousands of modules allocated: the collector's runs were half the build
        return _build_on_meta(spec)


def _build_on_meta(spec: ModelSpec) -> BuiltModel:
    """:func:`build` on the meta device, inside :func:`no_init`; a normal build where that fails."""
    try:
        with torch.device("meta"), no_init(), direct_attributes():
            return build(spec)
    except BuildFailed:  # the factory raised on the meta device: it may need real tensors
        return build(spec)
    except UserError:
        raise
    except Exception:  # noqa: BLE001 - a constructor that needs real tensors: fall back to real ones
        return build(spec)
