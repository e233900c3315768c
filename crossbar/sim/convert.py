"""Model conversion: :class:`CrossbarModel` replaces every conv / transposed conv / linear layer of a
copy of a model by an :class:`~graphcost.crossbar.sim.layer.AnalogLayer` and calibrates it."""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from graphcost.errors import UserError

from ..specs import DEPTHWISE_STRATEGIES, ArraySpec, NoiseSpec
from ..tiling import is_hf_conv1d  # the mapping's own test: what it maps as linear, the simulator simulates as linear
from .layer import AnalogLayer
from .noise import generators as noise_generators

#: Module types simulated on the arrays (and HF ``Conv1D``, see :func:`is_hf_conv1d`).
ANALOG_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
                nn.Linear)


def as_linear(module: nn.Module) -> nn.Linear:
    """An ``nn.Linear`` computing what a HF ``Conv1D`` computes (``x @ W + b`` = ``linear(x, W.T, b)``):
    the layer the arrays hold, ``in`` rows by ``out`` columns (on the meta device where ``module`` is)."""
    weight = module.weight.detach()
    linear = nn.Linear(weight.shape[0], weight.shape[1], bias=module.bias is not None, device=weight.device,
                       dtype=weight.dtype)
    with torch.no_grad():
        linear.weight.copy_(weight.t())
        if module.bias is not None:
            linear.bias.copy_(module.bias.detach())
    return linear


class CrossbarModel(nn.Module):
    """``model`` with every conv / transposed conv / linear layer simulated on crossbar arrays.

    >>> import torch
    >>> from graphcost.crossbar.specs import ArraySpec, NoiseSpec
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1))
    >>> x = torch.rand(2, 3, 16, 16)
    >>> sim = CrossbarModel(net, ArraySpec(256, 256, 16, 16, dac_bits=16, adc_bits=16), NoiseSpec())
    >>> _ = sim.calibrate(x)
    >>> bool(torch.allclose(sim(x), net(x), rtol=1e-3, atol=1e-3))
    True

    ``seed`` seeds the programming noise and faults (drawn here, once) and the read noise
    (drawn per call). ``depthwise``: the mapping strategy of grouped convs (``dense``,
    ``packed``, ``time-multiplexed``). ``slice_adc``: digitise every bit slice separately
    (exact, slower) instead of the tile's recombined partial sum (fast, the default).
    ``share_parameters``: the wrapped copy uses ``model``'s own parameters and buffers (for
    hardware-aware training, :mod:`.hwa`) instead of copies. ``channels_last``: the layers of 2-d
    convs compute on and return channels-last activations, the same values (oneDNN runs the
    tiles' grouped convs, a dense depthwise layer's most, ~2-3x faster on that layout with 2
    threads; the digital layers in between keep it; 4-d tensor arguments are converted on the way
    in). If the model's own code fails on such activations during calibration (``.view`` of an
    activation, say), calibration runs again with NCHW activations, which the simulation keeps.
    Layers that stay digital (recurrent ones) are listed in ``digital_layers``.
    """

    def __init__(self, model: nn.Module, array: ArraySpec, noise: NoiseSpec, *, seed: int = 0,
                 depthwise: str = "dense", slice_adc: bool = False, share_parameters: bool = False,
                 channels_last: bool = True):
        super().__init__()
        if depthwise not in DEPTHWISE_STRATEGIES:
            raise UserError(f"unknown depthwise strategy {depthwise!r}; use one of {', '.join(DEPTHWISE_STRATEGIES)}")
        self.array, self.noise, self.seed, self.depthwise, self.slice_adc = array, noise, seed, depthwise, slice_adc
        # share_parameters (HWA training): the copy's modules hold the ORIGINAL parameters and buffers
        memo = {id(t): t for t in (*model.parameters(), *model.buffers())} if share_parameters else {}
        self.model = copy.deepcopy(model, memo).eval()
        self.analog_layers: Dict[str, AnalogLayer] = {}
        self.digital_layers: List[str] = []
        replaced = self._convert(noise_generators(seed))
        if id(self.model) in replaced:
            self.model = replaced[id(self.model)]
        else:
            for parent in list(self.model.modules()):
                for child_name, child in list(parent._modules.items()):
                    if child is not None and id(child) in replaced:
                        parent._modules[child_name] = replaced[id(child)]
        self._layers = list(replaced.values())
        self._set_layout(torch.channels_last if channels_last else torch.contiguous_format)

    def _set_layout(self, layout: torch.memory_format) -> None:
        self.layout = layout
        for layer in self._layers:
            layer.layout = layout

    def _convert(self, gens: Dict[str, torch.Generator]) -> Dict[int, AnalogLayer]:
        """An analog layer per weight module, each module once in definition order; modules sharing
        a weight (and geometry) share one programming."""
        replaced: Dict[int, AnalogLayer] = {}
        by_weight: Dict[Tuple[int, str], AnalogLayer] = {}
        for name, module in self.model.named_modules():
            if is_hf_conv1d(module):  # not shared with training: HWA trains nn.Linear / conv layers
                layer = AnalogLayer(as_linear(module), self.array, self.noise, strategy=self.depthwise,
                                    slice_adc=self.slice_adc, generators=gens)
                replaced[id(module)] = layer
                self.analog_layers[name or type(module).__name__] = layer
            elif isinstance(module, ANALOG_TYPES):
                key = (id(module.weight), type(module).__name__)
                tied = by_weight.get(key)
                shared = tied.cells if tied is not None and _same_geometry(tied.reference, module) else None
                layer = AnalogLayer(module, self.array, self.noise, strategy=self.depthwise, slice_adc=self.slice_adc,
                                    generators=gens, shared_cells=shared)
                replaced[id(module)] = layer
                by_weight.setdefault(key, layer)
                self.analog_layers[name or type(module).__name__] = layer
            elif isinstance(module, (nn.RNNBase, nn.RNNCellBase)):
                self.digital_layers.append(name)
        return replaced

    @property
    def calibrated(self) -> bool:
        return all(layer.calibrated for layer in self._layers)

    def calibrate(self, *args, **kwargs) -> Any:
        """Run the float model on ``args`` and fix every layer's DAC and ADC ranges; returns its output
        (in the layers' activation layout, see the class docstring)."""
        try:
            out = self._calibration_pass(args, kwargs)
        except RuntimeError:
            if self.layout == torch.contiguous_format:
                raise
            self._set_layout(torch.contiguous_format)  # the model's code may need NCHW activations
            try:
                out = self._calibration_pass(args, kwargs)
            except RuntimeError:
                self._set_layout(torch.channels_last)  # it was not the layout
                raise
        for layer in self._layers:
            layer.finish_calibration()
        return out

    def _calibration_pass(self, args, kwargs) -> Any:
        for layer in self._layers:
            layer.calibrating, layer.calibrated = True, False
            layer.x_absmax.zero_()
            layer.psum_absmax.zero_()
            layer.x_signed = layer.psum_signed = False
        try:
            with torch.no_grad():
                return self.model(*self._in_layout(args), **kwargs)
        finally:
            for layer in self._layers:
                layer.calibrating = False

    def forward(self, *args, **kwargs):
        if not self.calibrated:
            self.calibrate(*args, **kwargs)
        return self.model(*self._in_layout(args), **kwargs)

    def _in_layout(self, args: tuple) -> tuple:
        """4-d tensor arguments in the activation layout, so that what the model computes from its
        input besides the analog layers (a pooled copy concatenated to a conv's output, say) has it too."""
        return tuple(a.contiguous(memory_format=self.layout) if torch.is_tensor(a) and a.dim() == 4 else a
                     for a in args)


def _same_geometry(a: nn.Module, b: nn.Module) -> bool:
    keys = ("stride", "padding", "dilation", "groups", "output_padding", "padding_mode")
    return all(getattr(a, k, None) == getattr(b, k, None) for k in keys)


def simulate(model: nn.Module, array: ArraySpec, noise: NoiseSpec, *, t_seconds: Optional[float] = None, seed: int = 0,
             depthwise: str = "dense", calibrate_with: Any = None) -> "CrossbarModel":
    """``model`` on crossbar arrays, for a user's own loop: the wrapped copy (a :class:`CrossbarModel`).

    What aihwkit's ``convert_to_analog(model, rpu_config)`` is to aihwkit: every layer the mapping puts
    on arrays (convolutions, ``nn.Linear``, HF ``Conv1D``) becomes an analog layer programmed with
    ``noise`` (seeded by ``seed``) and read ``t_seconds`` after programming (default: ``noise.t_seconds``);
    everything else (embeddings, norms, attention's activation-by-activation products) stays digital
    and exact. The converters are calibrated on the first call, or now on ``calibrate_with`` (a tensor,
    a tuple of positional inputs, or a dict of keyword inputs).

    >>> import torch
    >>> from graphcost.crossbar.specs import ArraySpec, NoiseSpec
    >>> net = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    >>> x = torch.randn(5, 16)
    >>> sim = simulate(net, ArraySpec(64, 64), NoiseSpec.pcm(), t_seconds=3600, calibrate_with=x)
    >>> sorted(sim.analog_layers), sim(x).shape
    (['0', '2'], torch.Size([5, 4]))
    """
    from dataclasses import replace

    if t_seconds is not None:
        noise = replace(noise, t_seconds=float(t_seconds))
    sim = CrossbarModel(model, array, noise, seed=seed, depthwise=depthwise)
    if calibrate_with is not None:
        if isinstance(calibrate_with, dict):
            sim.calibrate(**calibrate_with)
        elif isinstance(calibrate_with, (tuple, list)):
            sim.calibrate(*calibrate_with)
        else:
            sim.calibrate(calibrate_with)
    return sim
