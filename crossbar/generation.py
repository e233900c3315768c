"""Token generation on the chip: prefill, then decode steps against a KV cache (decoder-only and encoder-decoder).

``graphcost map MODEL --generate P+G [--batch B]``: the prefill of ``P`` tokens is the model traced
at ``B x P`` token ids (the "frame" of the other figures); a decode step is the model itself
traced with one new token per sequence against a KV cache of ``L`` tokens built from meta tensors
inside its forward (:class:`DecodeStep`), so every op of the step (the cache update, attention over
``L + 1`` keys, the norms, the head) is captured, not guessed from the prefill. The step is captured
at the first (``L = P``) and the last (``L = P + G - 1``) context; a step's work is affine in the
context (attention's QK^T / AV and softmax grow by one key, all else is fixed), so the figures in
between are the line through those two captures. An encoder-decoder's prefill is its encoder over the
prompt and its decoder's first step; its decode steps attend to the prompt through the cross-attention
cache and to their own tokens (the context counts both). Under gain-cell attention with a sliding window
of ``W`` tokens the attention work stops growing at ``L = W``.

The KV cache, by definition: ``bytes(L) = 2 x layers x kv_heads x head_dim x L x B x bytes per
element`` (grouped-query attention counts the KV heads). Under digital attention every step reads
the whole cache and writes one token's K and V: from on-chip SRAM while the cache at ``P + G`` fits
``sram_capacity_bytes``, the part beyond it from DRAM (its bytes also cost DRAM time); under
gain-cell attention K and V are written into the gain cells and never read out.

>>> parse_generate("128+128")
(128, 128)
"""
from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from graphcost.errors import UserError
from graphcost.inputs import InputSpec

from .energy import EnergyReport, link_energy_j
from .perf import Performance
from .tech import TechSpec

_GENERATE = re.compile(r"^\s*(-?\d+)\s*\+\s*(-?\d+)\s*$")
#: contexts of the ``by_context`` list: this many points from ``P`` to ``P + G - 1``
CONTEXT_POINTS = 8


def parse_generate(text: str) -> Tuple[int, int]:
    """``"P+G"`` -> ``(P, G)``: prompt tokens (>= 1) and generated tokens (>= 1)."""
    match = _GENERATE.match(text or "")
    if not match:
        raise UserError(f"--generate is PROMPT+GENERATED token counts (e.g. 128+128), got {text!r}")
    prompt, generated = int(match.group(1)), int(match.group(2))
    if prompt < 1 or generated < 1:
        raise UserError(f"--generate needs at least one prompt token and one generated token, got {text!r}")
    return prompt, generated


@dataclass(frozen=True)
class GenerateSpec:
    """Prefill ``prompt_tokens``, then generate ``generated_tokens``, ``batch`` sequences at once."""

    prompt_tokens: int
    generated_tokens: int
    batch: int = 1

    def __post_init__(self):
        for name in ("prompt_tokens", "generated_tokens", "batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"generation {name.replace('_', ' ')} must be a positive integer, got {value!r}")

    @property
    def contexts(self) -> Tuple[int, int]:
        """Cache lengths of the two captured decode steps: the first and the last (one apart at least)."""
        first = self.prompt_tokens
        return first, first + max(1, self.generated_tokens - 1)


# --------------------------------------------------------------------------- the model's cache
@dataclass(frozen=True)
class KVShape:
    """What one token adds to the KV cache of a decoder: per layer K and V of ``kv_heads x head_dim``."""

    layers: int
    kv_heads: int
    head_dim: int
    heads: int

    def bytes(self, context: int, batch: int, bytes_per_element: float) -> float:
        return 2 * self.layers * self.kv_heads * self.head_dim * context * batch * bytes_per_element


def decoder_config(model: nn.Module, label: str):
    """The transformers config of a model that generates tokens (decoder-only or encoder-decoder on token
    ids); a :class:`UserError` otherwise."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "model_type"):
        raise UserError(f"--generate needs an hf: language model (decoder-only or encoder-decoder); {label} is not one")
    from transformers.models.auto.modeling_auto import (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
                                                        MODEL_FOR_MASKED_LM_MAPPING_NAMES)

    kind = config.model_type
    if getattr(config, "is_encoder_decoder", False):
        if getattr(model, "main_input_name", "input_ids") != "input_ids":
            raise UserError(f"--generate takes a prompt of tokens; {label} reads {model.main_input_name}")
        return config
    if kind not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or kind in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        raise UserError(f"{label} is an encoder: it does not generate tokens (--generate is for decoder-only and "
                        f"encoder-decoder models)")
    return config


def kv_shape(config) -> KVShape:
    """Decoder layers, KV heads and head size of a config (``num_key_value_heads`` where the model
    groups its queries; an encoder-decoder's decoder layers and heads, T5's ``d_kv``)."""
    heads = int(getattr(config, "decoder_attention_heads", None) or getattr(config, "num_attention_heads", 0) or 0)
    layers = int(getattr(config, "decoder_layers", None) or getattr(config, "num_decoder_layers", None)
                 or getattr(config, "num_hidden_layers", 0) or 0)
    if not heads or not layers:
        raise UserError(f"--generate needs an attention decoder; {config.model_type} has no attention heads")
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "d_kv", None) or getattr(config, "head_dim", None) or config.hidden_size // heads)
    return KVShape(layers, kv_heads, head_dim, heads)


class DecodeStep(nn.Module):
    """One decode step of ``model``: ``batch`` new tokens against a KV cache of ``context`` tokens,
    built inside ``forward`` on the input's (meta) device, so the capture records the step itself.

    An encoder-decoder (``prompt`` tokens given) attends to the encoder's ``prompt`` outputs through
    its cross-attention cache (filled at the prefill) and to ``context - prompt`` tokens of its own
    (at least one: the start token); the encoder does not run again."""

    def __init__(self, model: nn.Module, context: int, shape: KVShape, prompt: Optional[int] = None):
        super().__init__()
        self.model, self.context, self.shape, self.prompt = model, context, shape, prompt

    @property
    def own_tokens(self) -> int:
        """Tokens in the decoder's self-attention cache."""
        return self.context if self.prompt is None else max(1, self.context - self.prompt)

    def _cache(self, batch: int, tokens: int, device):
        from transformers import DynamicCache

        s, cache = self.shape, DynamicCache()
        size = (batch, s.kv_heads, tokens, s.head_dim)
        for layer in range(s.layers):
            cache.update(torch.zeros(size, device=device), torch.zeros(size, device=device), layer)
        return cache

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        batch, device = input_ids.shape[0], input_ids.device
        cache = self._cache(batch, self.own_tokens, device)
        with warnings.catch_warnings():  # transformers 5 renames past_key_values; both spellings are accepted
            warnings.simplefilter("ignore", FutureWarning)
            if self.prompt is None:
                out = self.model(input_ids=input_ids, past_key_values=cache, use_cache=True)
            else:
                from transformers import EncoderDecoderCache

                cache = EncoderDecoderCache(cache, self._cache(batch, self.prompt, device))
                encoded = torch.zeros(batch, self.prompt, self.model.config.hidden_size, device=device)
                out = self.model(encoder_outputs=(encoded,), decoder_input_ids=input_ids, past_key_values=cache,
                                 use_cache=True)
        return out[0]


def decode_step_inputs(batch: int) -> Dict[str, InputSpec]:
    return {"input_ids": InputSpec((batch, 1), torch.int64)}


# --------------------------------------------------------------------------- figures
@dataclass(frozen=True)
class Step:
    """One captured decode step: its context, latency, energy (all sequences of the batch), the part
    of it in attention (activation x activation MACs and their gain-cell periphery), and link energy."""

    context: int
    latency_s: float
    energy_j: float
    attention_j: float
    link_j: float


def step_of(context: int, perf: Performance, report: EnergyReport) -> Step:
    """The figures of one decode step's mapping on the chip."""
    attention = 0.0
    for group, layer in zip(perf.mapping.digital, report.layers[len(perf.mapping.layers):]):
        if group.work.gain_cell_macs or group.work.macs:
            attention += layer.energy_j
    return Step(context, perf.latency_s, report.per_frame_j, attention, link_energy_j(perf))


@dataclass(frozen=True)
class Generation:
    """The generation figures (JSON ``generation``, keys as issue 19 spells them)."""

    spec: GenerateSpec
    ttft_s: float
    first: Step
    last: Step
    kv: KVShape
    tech: TechSpec
    attention: str

    def _effective(self, context: int) -> float:
        """The context attention's work follows: clamped at the window under gain-cell attention."""
        return min(context, self.tech.gain_cell_window_tokens) if self.attention == "gain-cell" else context

    def _line(self, name: str, context: int) -> float:
        a, b = self.first, self.last
        slope = (getattr(b, name) - getattr(a, name)) / (self._effective(b.context) - self._effective(a.context) or 1)
        return getattr(a, name) + slope * (self._effective(context) - self._effective(a.context))

    @property
    def kv_bytes_per_element(self) -> float:
        return self.tech.activation_bits / 8

    def kv_cache_bytes(self, context: Optional[int] = None) -> float:
        spec = self.spec
        ctx = spec.prompt_tokens + spec.generated_tokens if context is None else context
        return self.kv.bytes(ctx, spec.batch, self.kv_bytes_per_element)

    @property
    def kv_cache_location(self) -> str:
        if self.attention == "gain-cell":
            return "gain-cell"
        return "sram" if self.kv_cache_bytes() <= self.tech.sram_capacity_bytes else "sram+dram"

    def _kv_traffic(self, context: int) -> Tuple[float, float]:
        """Energy and time of one step's KV traffic (all sequences): write one token's K and V, read
        the whole cache of ``context + 1`` tokens (digital attention; SRAM first, DRAM beyond)."""
        tech = self.tech
        written = self.kv_cache_bytes(1)
        if self.attention == "gain-cell":
            return written * tech.gain_cell_write_energy_j_per_byte, 0.0
        read = self.kv_cache_bytes(context + 1)
        in_sram = min(read, tech.sram_capacity_bytes)
        in_dram = read - in_sram
        energy = (written * tech.sram_write_energy_j_per_byte + in_sram * tech.sram_read_energy_j_per_byte
                  + in_dram * 8 * tech.dram_energy_j_per_bit)
        return energy, in_dram / tech.dram_bytes_per_s

    def s_per_token(self, context: int) -> float:
        """Latency of the decode step at ``context`` cached tokens (every sequence of the batch at once)."""
        return self._line("latency_s", context) + self._kv_traffic(context)[1]

    def energy_j_per_token(self, context: int) -> float:
        return (self._line("energy_j", context) + self._kv_traffic(context)[0]) / self.spec.batch

    def attention_energy_j_per_token(self, context: int) -> float:
        return (self._line("attention_j", context) + self._kv_traffic(context)[0]) / self.spec.batch

    def contexts(self) -> List[int]:
        first, last = self.first.context, self.spec.prompt_tokens + self.spec.generated_tokens - 1
        last = max(first, last)
        points = sorted({round(first + (last - first) * i / (CONTEXT_POINTS - 1)) for i in range(CONTEXT_POINTS)})
        return points

    def to_dict(self) -> Dict[str, Any]:
        spec = self.spec
        first = self.first.context  # an encoder-decoder's first step: the prompt and its start token
        last = max(first, spec.prompt_tokens + spec.generated_tokens - 1)
        s_last = self.s_per_token(last)
        return {
            "prompt_tokens": spec.prompt_tokens,
            "generated_tokens": spec.generated_tokens,
            "batch": spec.batch,
            "attention": self.attention,
            "ttft_s": self.ttft_s,
            "decode_s_per_token_first": self.s_per_token(first),
            "decode_s_per_token_last": s_last,
            "tokens_per_s": spec.batch / s_last if s_last > 0 else math.inf,
            "energy_j_per_token": self.energy_j_per_token(last),
            "attention_energy_j_per_token": self.attention_energy_j_per_token(last),
            "kv_cache_bytes": self.kv_cache_bytes(),
            "kv_cache_location": self.kv_cache_location,
            "by_context": [{"context": c, "s_per_token": self.s_per_token(c),
                            "energy_j_per_token": self.energy_j_per_token(c)} for c in self.contexts()],
        }


def chips_dict(perf: Performance, step: Optional[Step], batch: int) -> Dict[str, Any]:
    """JSON ``chips``: how many chips, arrays per chip, link energy per token (per frame without generation)."""
    link = step.link_j / batch if step is not None else link_energy_j(perf)
    return {"count": perf.chips, "arrays_per_chip": perf.chip.arrays_per_chip, "link_energy_j_per_token": link}

