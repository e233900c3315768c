"""Token generation on the chip: prefill, then decode steps against a KV cache (decoder-only and encoder-decoder).

``graphcost map MODEL --generate P+G [--batch B]``: the prefill of ``P`` tokens is the model traced
at ``B x P`` token ids (the "frame" of the other figures; its latency is the time to first token); a
decode step is the model itself traced with one new token per sequence against a KV cache of ``L``
tokens built from meta tensors as its forward starts (:class:`DecodeStep`), so every op of the step
(the cache update, attention over ``L + 1`` keys, the norms, the head) is captured, not guessed from
the prefill, under the prefill's layer names. The step is captured at the first (``L = P``) and the
last (``L = P + G - 2``: the step that makes token ``G`` reads token ``G - 1``; :class:`TokenLayout`)
context; a step's work is affine in the context (attention's QK^T / AV and
softmax grow by one key, all else is fixed), so the figures in between are the line through those two
captures. An encoder-decoder runs its encoder once, in the prefill, and its decode steps attend to the
encoder's outputs through the cross-attention cache (fixed) and to their own tokens through the
self-attention cache (growing); the context counts both (:class:`TokenLayout`). On token ids (T5,
BART) the prompt is the encoder's and the decoder starts from one token; on other inputs (Whisper's
log-mel features) the encoder reads them, its output length set by them, and the prompt is the
decoder's. A prompt and generation past a learned position table (GPT-2's 1024, Whisper's 448) is
refused; past a rotary model's trained context it runs, with a note (:func:`context_note`). Under
gain-cell attention with a sliding window of ``W`` tokens the attention work stops growing once the
decoder's own tokens reach ``W``.

The KV cache, by definition: ``bytes(L) = 2 x layers x kv_heads x head_dim x L x B x bytes per
element`` (grouped-query attention counts the KV heads). Under digital attention every step reads
the whole cache and writes one token's K and V: from on-chip SRAM while the cache at the end
(``P + G - 1`` tokens) fits ``sram_capacity_bytes``, the part beyond it from DRAM (its bytes also cost DRAM time); under
gain-cell attention K and V are written into the gain cells and never read out.

>>> parse_generate("128+128")
(128, 128)
"""
from __future__ import annotations

import inspect
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
#: contexts of the ``by_context`` list: this many points from the first step's context to the last's
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
    """The transformers config of a model that generates tokens (decoder-only, or an encoder-decoder on
    any input: text, Whisper's log-mel features); a :class:`UserError` otherwise."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "model_type"):
        raise UserError(f"--generate needs an hf: language model (decoder-only or encoder-decoder); {label} is not one")
    from transformers.models.auto.modeling_auto import (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
                                                        MODEL_FOR_MASKED_LM_MAPPING_NAMES)

    kind = config.model_type
    if getattr(config, "is_encoder_decoder", False):
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
    # an encoder-decoder's num_key_value_heads may alias its encoder's heads (Whisper's attribute map)
    grouped = None if getattr(config, "is_encoder_decoder", False) else getattr(config, "num_key_value_heads", None)
    kv_heads = int(grouped or heads)
    head_dim = int(getattr(config, "d_kv", None) or getattr(config, "head_dim", None) or config.hidden_size // heads)
    return KVShape(layers, kv_heads, head_dim, heads)


@dataclass(frozen=True)
class TokenLayout:
    """Where a request's tokens sit in the caches of its decode steps.

    ``encoder_tokens`` is the cross-attention cache, the encoder's outputs computed once at the prefill
    and fixed (0 for a decoder-only model); ``own_first`` / ``own_last`` are the tokens in the decoder's
    self-attention cache at the first and the last decode step, ``own_final`` the tokens the decoder has
    read once the last token is made (its cache at the end). A step's context counts both caches.

    One convention for every family: the decoder reads ``d`` tokens before its first generated one (the
    prompt, ``P``, of a decoder-only model or Whisper; the start token, ``1``, of T5 and BART, whose prompt
    is the encoder's); the prefill makes token 1 and the step that makes token ``g`` reads token ``g - 1``
    against a cache of ``d + g - 2`` tokens. So the first step's cache holds ``d``, the last one's (it makes
    token ``G``) ``d + G - 2``: the last generated token attends to ``d + G - 1`` keys (its predecessor and
    every token before it), and the cache ends at ``d + G - 1`` (token ``G`` is never read back).

    >>> TokenLayout(encoder_tokens=1500, own_first=4, own_last=130, own_final=131).final_context
    1631
    """

    encoder_tokens: int
    own_first: int
    own_last: int
    own_final: int

    @classmethod
    def of(cls, encoder_tokens: int, read_first: int, generated: int) -> "TokenLayout":
        """The layout of ``generated`` tokens after the decoder read ``read_first`` (see the class)."""
        return cls(encoder_tokens, read_first, read_first + max(0, generated - 2), read_first + generated - 1)

    @property
    def final_context(self) -> int:
        """Tokens in both caches after the last token: the largest KV cache of the request."""
        return self.encoder_tokens + self.own_final


def _reads_tokens(model: nn.Module) -> bool:
    return getattr(model, "main_input_name", "input_ids") == "input_ids"


#: leaf names of learned absolute position tables: GPT-2's ``wpe``, OPT / BART / Whisper's
#: ``embed_positions``, BERT-style ``position_embeddings`` (rotary and relative models have none)
_POSITION_TABLES = ("wpe", "embed_positions", "position_embeddings")


def _position_limit(module: nn.Module, config, *names: str) -> Tuple[Optional[int], bool]:
    """The positions ``module`` was built for (the first of ``names`` ``config`` sets) and whether they are
    a learned absolute table, which cannot be looked up past its end."""
    limit = next((getattr(config, n) for n in names if isinstance(getattr(config, n, None), int)), None)
    learned = any(isinstance(m, nn.Embedding) and name.rsplit(".", 1)[-1] in _POSITION_TABLES
                  for name, m in module.named_modules())
    return limit, learned


def _check_positions(module: nn.Module, config, tokens: int, gen: GenerateSpec, what: str,
                     *names: str) -> Optional[str]:
    """Refuse ``tokens`` past a learned position table; past a rotary / relative model's trained context, a note."""
    limit, learned = _position_limit(module, config, *names)
    if limit is None or tokens <= limit:
        return None
    request = f"--generate {gen.prompt_tokens}+{gen.generated_tokens} needs {tokens} {what}positions"
    if learned:
        raise UserError(f"{request}; {config.model_type}'s learned position table has {limit}")
    return (f"{request}, beyond {config.model_type}'s trained context of {limit} (rotary or relative positions "
            f"run past it, as in transformers: the costs hold, the model's outputs there are untrained)")


def context_note(model: nn.Module, gen: GenerateSpec) -> Optional[str]:
    """Check that ``gen`` fits ``model``'s positions before any tracing: the decoder's ``P + G`` (``1 + G``
    after an encoder of token ids, whose ``P`` the encoder's own positions must hold), as transformers'
    ``generate`` counts its ``max_length``. Past a learned absolute position table (GPT-2's
    ``n_positions``, OPT and BART's ``max_position_embeddings``, Whisper's ``max_target_positions``) a
    :class:`UserError`; past a rotary or relative model's ``max_position_embeddings`` (Llama) a note: it
    runs there, as transformers lets it, untrained.
    """
    config, prompt, generated = model.config, gen.prompt_tokens, gen.generated_tokens
    if not getattr(config, "is_encoder_decoder", False):
        return _check_positions(model, config, prompt + generated, gen, "", "n_positions", "max_position_embeddings")
    decoder = model.get_decoder()
    names = ("max_target_positions", "max_position_embeddings")
    if not _reads_tokens(model):
        return _check_positions(decoder, config, prompt + generated, gen, "decoder ", *names)
    encoder_note = _check_positions(model.get_encoder(), config, prompt, gen, "encoder ", "max_position_embeddings")
    return _check_positions(decoder, config, 1 + generated, gen, "decoder ", *names) or encoder_note


def token_layout(model: nn.Module, gen: GenerateSpec, inputs: Dict[str, InputSpec]) -> TokenLayout:
    """The caches of ``gen`` on ``model`` (see :class:`TokenLayout`; checked before any tracing).

    A decoder-only model caches its prompt and its tokens. An encoder-decoder on token ids (T5, BART)
    encodes the prompt (the cross-attention cache) and decodes from one start token. One on other inputs
    (Whisper's log-mel ``inputs``) encodes them once, its length the encoder's output on the meta device,
    and the prompt is the decoder's (Whisper's start-of-transcript tokens).
    """
    prompt, generated = gen.prompt_tokens, gen.generated_tokens
    if not getattr(model.config, "is_encoder_decoder", False):
        return TokenLayout.of(0, prompt, generated)
    if _reads_tokens(model):
        return TokenLayout.of(prompt, 1, generated)
    return TokenLayout.of(encoder_length(model, inputs), prompt, generated)


def _encoder_inputs(model: nn.Module, inputs: Dict[str, InputSpec]) -> Dict[str, InputSpec]:
    return {name: spec for name, spec in inputs.items() if not name.startswith("decoder_")}


def encoder_length(model: nn.Module, inputs: Dict[str, InputSpec]) -> int:
    """Tokens the encoder of an encoder-decoder makes of ``inputs`` (its ``decoder_*`` ones left out),
    by running the encoder once on the meta device."""
    from graphcost.capture_dispatch import meta_state

    encoder = model.get_encoder()
    dtype = next((p.dtype for p in encoder.parameters() if p.is_floating_point()), torch.float32)
    values = {name: torch.empty(spec.shape, dtype=spec.dtype or dtype, device="meta")
              for name, spec in _encoder_inputs(model, inputs).items()}
    with torch.no_grad():
        out = torch.func.functional_call(encoder, meta_state(encoder), (), values, tie_weights=True, strict=False)
    return int(out[0].shape[1])


def prefill_inputs(model: nn.Module, gen: GenerateSpec, inputs: Dict[str, InputSpec]) -> Dict[str, InputSpec]:
    """The prefill's inputs: the prompt's token ids (an encoder-decoder on tokens also gets its start
    token); an encoder-decoder on other inputs gets them (``inputs``, ``B`` of each) and the prompt as
    its decoder's token ids. The prefill yields the first token."""
    batch, prompt = gen.batch, gen.prompt_tokens
    if not getattr(model.config, "is_encoder_decoder", False):
        return {"input_ids": InputSpec((batch, prompt), torch.int64)}
    if _reads_tokens(model):
        return {"input_ids": InputSpec((batch, prompt), torch.int64),
                "decoder_input_ids": InputSpec((batch, 1), torch.int64)}
    encoded = {name: InputSpec((batch,) + spec.shape[1:], spec.dtype)
               for name, spec in _encoder_inputs(model, inputs).items()}
    return {**encoded, "decoder_input_ids": InputSpec((batch, prompt), torch.int64)}


class DecodeStep:
    """One decode step of ``model``: one new token per sequence against a self-attention KV cache of
    ``own_tokens`` and (an encoder-decoder) a cross-attention cache of the encoder's ``encoder_tokens``
    outputs, filled at the prefill: the encoder does not run again.

    :meth:`trace` traces ``model`` itself, the caches entering its forward through a pre-hook that builds
    them on the input's (meta) device, so the capture records the step itself (the cache update,
    attention over ``own_tokens + 1`` keys, the norms, the head) under the prefill's layer names.
    """

    def __init__(self, model: nn.Module, own_tokens: int, shape: KVShape, encoder_tokens: int = 0):
        self.model, self.own_tokens, self.shape, self.encoder_tokens = model, own_tokens, shape, encoder_tokens

    @property
    def context(self) -> int:
        """Tokens attended: both caches."""
        return self.encoder_tokens + self.own_tokens

    @property
    def _encoder_decoder(self) -> bool:
        return getattr(self.model.config, "is_encoder_decoder", False)

    @property
    def _input_name(self) -> str:
        return "decoder_input_ids" if self._encoder_decoder else "input_ids"

    def inputs(self, batch: int) -> Dict[str, InputSpec]:
        """The step's new token ids, ``batch x 1``."""
        return {self._input_name: InputSpec((batch, 1), torch.int64)}

    def trace(self, batch: int):
        """The :class:`~graphcost.tracing.Trace` of one step of ``batch`` sequences."""
        from graphcost.tracing import trace

        pre = self.model.register_forward_pre_hook(self._with_caches, with_kwargs=True)
        post = self.model.register_forward_hook(lambda module, args, out: out[0])  # the logits, not the caches
        try:
            with warnings.catch_warnings():  # older transformers warn on either spelling of the cache argument
                warnings.simplefilter("ignore", FutureWarning)
                return trace(self.model, self.inputs(batch), tracer="dispatch")
        finally:
            pre.remove()
            post.remove()

    def _cache(self, batch: int, tokens: int, device):
        from transformers import DynamicCache

        s, cache = self.shape, DynamicCache()
        size = (batch, s.kv_heads, tokens, s.head_dim)
        for layer in range(s.layers):
            cache.update(torch.zeros(size, device=device), torch.zeros(size, device=device), layer)
        return cache

    def _with_caches(self, module: nn.Module, args, kwargs):
        ids = kwargs[self._input_name]
        batch, device = ids.shape[0], ids.device
        cache = self._cache(batch, self.own_tokens, device)
        extra: Dict[str, Any] = {"use_cache": True}
        if self._encoder_decoder:
            from transformers import EncoderDecoderCache

            cache = EncoderDecoderCache(cache, self._cache(batch, self.encoder_tokens, device))
            hidden = self.model.config.hidden_size
            extra["encoder_outputs"] = (torch.zeros(batch, self.encoder_tokens, hidden, device=device),)
        takes = inspect.signature(module.forward).parameters
        extra["cache" if "cache" in takes else "past_key_values"] = cache  # transformers >= 5.2 names it cache
        return args, {**kwargs, **extra}


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
    layout: TokenLayout

    def _effective(self, context: int) -> float:
        """The context attention's work follows: under gain-cell attention the self-attention tokens clamped
        at the window (the encoder's outputs, fixed, are all attended)."""
        if self.attention != "gain-cell":
            return context
        encoder = self.layout.encoder_tokens
        return encoder + min(context - encoder, self.tech.gain_cell_window_tokens)

    def _line(self, name: str, context: int) -> float:
        a, b = self.first, self.last
        slope = (getattr(b, name) - getattr(a, name)) / (self._effective(b.context) - self._effective(a.context) or 1)
        return getattr(a, name) + slope * (self._effective(context) - self._effective(a.context))

    @property
    def kv_bytes_per_element(self) -> float:
        return self.tech.activation_bits / 8

    def kv_cache_bytes(self, context: Optional[int] = None) -> float:
        ctx = self.layout.final_context if context is None else context
        return self.kv.bytes(ctx, self.spec.batch, self.kv_bytes_per_element)

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

    @property
    def last_context(self) -> int:
        """The context of the step that makes the last token (``TokenLayout.own_last`` plus the encoder's)."""
        return self.last.context

    def contexts(self) -> List[int]:
        first, last = self.first.context, self.last_context
        points = sorted({round(first + (last - first) * i / (CONTEXT_POINTS - 1)) for i in range(CONTEXT_POINTS)})
        return points

    def to_dict(self) -> Dict[str, Any]:
        spec = self.spec
        first, last = self.first.context, self.last_context  # an encoder-decoder's contexts count its encoder
        s_last = self.s_per_token(last)
        return {
            "prompt_tokens": spec.prompt_tokens,
            "generated_tokens": spec.generated_tokens,
            "batch": spec.batch,
            "encoder_tokens": self.layout.encoder_tokens,
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

