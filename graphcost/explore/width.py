"""The width search: the widest integer width whose last output stays within a MAC budget.

The paper (ItNet, Sec. III-A) picks, per architecture, "the largest possible number of channels f
that results in a network with less than 2.2 billion MACs for the last output". MACs grow
monotonically with the width, so :func:`widest_width` keeps a bracket ``lo`` (widest known within
budget) / ``hi`` (narrowest known over budget) and stops when ``hi == lo + 1``. A least-squares
quadratic in the width through the probes so far proposes the next probe (MACs of a width-scaled
conv net are ``a f^2 + b f`` up to rounding of derived widths), with bisection as the fallback.

Fit, predict, verify: one trace is enough to predict the MACs at any other width without tracing
(:class:`ChannelScaling`: every conv / linear call's MACs are its channel product times what a width
leaves alone; the model is only built at the other width). The search runs on these predictions, then
the width it settles on is analysed for real. Where the estimate agrees with both real analyses (the
start and the settled width), the next width's MACs are an *agreed prediction*, not traced: 2 traces
per point where the prediction holds (the paper's 60-point grid in 120 analyses instead of 179, and of
238 without estimates). Only where a real analysis disagrees does the search go on with real probes,
so the answer is always the one the real probes prove.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
from torch import nn

from graphcost.passes import macs, needed_calls

DEFAULT_WIDTH_MAX = 4096


def last_output_macs(t) -> int:
    """MACs the last output of trace ``t`` needs: the MACs of its ancestors in the execution DAG."""
    return macs(t, needed_calls(t, t.outputs[-1]))



#: the layers whose MACs scale with their channels' product
_CHANNEL_LAYERS = (nn.modules.conv._ConvNd, nn.Linear)


def _channel_pair(module) -> Optional[int]:
    """Input channels per group x output channels of a conv or linear module (the product its MACs scale by)."""
    if isinstance(module, _CHANNEL_LAYERS):
        shape = module.weight.shape
        if len(shape) >= 2:
            return int(shape[0]) * int(shape[1])
    return None


def _layer_pairs(module: nn.Module) -> Dict[str, int]:
    """The channel pair of every conv and linear layer of ``module``, by path (one walk of its modules)."""
    pairs = {}
    for path, layer in module.named_modules():
        pair = _channel_pair(layer)
        if pair is not None:
            pairs[path] = pair
    return pairs


class ChannelScaling:
    """The last-output MACs of the model of trace ``t`` at another width, predicted without tracing it.

    Every call with MACs of ``t`` must be a conv or linear module call: its MACs are the product of its
    channels (inputs per group x outputs) and what a width leaves alone (batch, spatial size, kernel), so
    ``scaling(module)``, the same model built at another width, reads the channels off ``module``'s layers.
    None (no estimate) where ``t`` has another call with MACs, or ``module``'s conv / linear layers are
    not those of ``t``'s model. An estimate steers :func:`widest_width`: the width it settles on is
    verified by a real analysis, and only an estimate that agrees with it stands in for the next width.

    >>> import torch, graphcost
    >>> def net(f): return torch.nn.Sequential(torch.nn.Conv2d(3, f, 3), torch.nn.Conv2d(f, f // 2, 1))
    >>> scaling = ChannelScaling(graphcost.trace(net(8), (1, 3, 10, 10)))
    >>> scaling(net(12)) == last_output_macs(graphcost.trace(net(12), (1, 3, 10, 10)))
    True
    """

    def __init__(self, t) -> None:
        self.calls: Optional[List[Tuple[str, int]]] = None  # (module path, MACs per channel pair)
        self.layers: frozenset = frozenset()  # paths of the conv / linear layers of the traced model
        self.total: Optional[int] = None  # the traced model's own last-output MACs (the estimate at its width)
        if t.root is not t.module:
            return
        pairs = _layer_pairs(t.module)
        self.layers = frozenset(pairs)
        calls = []
        for name in needed_calls(t, t.outputs[-1]):
            record = t.cost_record(name)  # the captured record: no loop graph for a probe
            if not record.macs:
                continue
            pair = pairs.get(record.target) if record.calls_module else None
            if pair is None or record.macs % pair:
                return
            calls.append((record.target, record.macs // pair))
        self.calls = calls
        self.total = sum(per_pair * pairs[path] for path, per_pair in calls)

    def __call__(self, module) -> Optional[int]:
        if self.calls is None:
            return None
        pairs = _layer_pairs(module)
        if pairs.keys() != self.layers:  # layers added or dropped at this width: other calls
            return None
        return sum(per_pair * pairs[path] for path, per_pair in self.calls)


def _power_law(known: Mapping[int, int], budget: float) -> Optional[int]:
    """``MACs ~ f^2`` through the probe nearest the budget (on a log scale)."""
    f0, m0 = min(known.items(), key=lambda kv: abs(math.log(max(kv[1], 1)) - math.log(budget)))
    if m0 <= 0:
        return None
    return int(math.floor(f0 * math.sqrt(budget / m0) + 1e-9))


def _predict(known: Mapping[int, int], budget: float) -> Optional[int]:
    """Largest integer width whose fitted MACs stay within ``budget``.

    One probe: ``MACs ~ f^2`` through it. More: least squares of ``a f^2 + b f`` through all
    probes (rounding of derived widths such as ``f // 2`` makes the exact curve jitter, which a
    fit through only the nearest three points would amplify into a wild extrapolation).
    """
    if len(known) == 1:
        return _power_law(known, budget)
    xs = np.array(list(known), dtype=float)
    ys = np.array([known[k] for k in known], dtype=float)
    weights = 1.0 / np.maximum(ys, 1.0)  # relative residuals: every probe counts alike
    design = np.stack([xs ** 2, xs], axis=1) * weights[:, None]
    try:
        (a, b), *_ = np.linalg.lstsq(design, ys * weights, rcond=None)
    except np.linalg.LinAlgError:  # pragma: no cover - degenerate probes
        return _power_law(known, budget)
    if a <= 0 and b <= 0:
        return _power_law(known, budget)
    if abs(a) < 1e-12:
        return int(math.floor(budget / b + 1e-9)) if b > 0 else _power_law(known, budget)
    disc = b * b + 4 * a * budget
    if disc < 0:
        return _power_law(known, budget)
    root = (-b + math.sqrt(disc)) / (2 * a)
    return int(math.floor(root + 1e-9)) if math.isfinite(root) and root > 0 else _power_law(known, budget)


class InvalidWidth(Exception):
    """A probe's width that the model rejects (e.g. below its minimum); the search moves above it."""


@dataclass
class WidthSearch:
    """Result of :func:`widest_width`: ``width`` (None if even ``lo_bound`` is over budget), probes made.

    ``probes`` maps each width to its MACs: real probes, and the widths in ``predicted``, whose MACs are
    agreed predictions (estimates that agreed with every real probe they could be compared with).
    """

    width: Optional[int]
    probes: Dict[int, int] = field(default_factory=dict)
    capped: bool = False
    predicted: Tuple[int, ...] = ()


def _next_probe(known: Mapping[int, int], budget: float, lo: Optional[int], hi: Optional[int], lower: int,
                upper: int) -> Optional[int]:
    """The next width to probe inside ``[lower, upper]``: the fit's guess, else bisection."""
    guess = _predict(known, budget)
    if guess is not None:
        for option in (guess, guess + 1):
            if lower <= option <= upper and option not in known:
                return option
        if guess < lower and lower not in known:
            return lower  # the fit undershoots: prove lo + 1 is over budget
        if guess > upper and upper not in known:
            return upper
    if lo is None:
        candidate = max(lower, min(upper, (lower + (hi if hi is not None else upper)) // 2))
    elif hi is None:
        candidate = min(upper, max(lower, 2 * lo))
    else:
        candidate = (lo + hi) // 2
    if candidate in known:
        candidate = next((w for w in range(lower, upper + 1) if w not in known), None)
    return candidate


def widest_width(probe: Callable[[int], int], budget: float, lo_bound: int = 1, hi_bound: int = DEFAULT_WIDTH_MAX,
                 start: int = 32, estimate: Optional[Callable[[int], Optional[int]]] = None) -> WidthSearch:
    """Largest integer ``w`` in ``[lo_bound, hi_bound]`` with ``probe(w) <= budget``, ``probe`` non-decreasing.

    Proves the answer by probing it and ``w + 1`` (unless ``w == hi_bound``). A probe may raise
    :class:`InvalidWidth` for widths below the model's minimum: the domain then starts above.

    ``estimate(w)``, where given, is a cheap prediction of ``probe(w)`` (None: cannot tell), valid once
    ``start`` has been probed: fit, predict, verify -- the search runs on the estimates, then the predicted
    width is probed for real. Where the estimates agree with the real probes at ``start`` and at that width,
    the estimate of ``w + 1`` is taken for its probe (an agreed prediction, listed in ``predicted``); else
    ``w + 1`` is probed too. Only where a real probe disagrees does the search go on with real probes.
    The answer is the same either way for an estimate that is exact wherever it agrees with the probes.

    >>> widest_width(lambda f: 3 * f * f + 5 * f, 1000).width   # 3*17^2+85 = 952, 3*18^2+90 = 1062
    17
    >>> real = []
    >>> def probe(f):
    ...     real.append(f)
    ...     return 3 * f * f + 5 * f
    >>> search = widest_width(probe, 1000, estimate=lambda f: 3 * f * f + 5 * f)
    >>> search.width, real, search.predicted   # the start and 17 probed, 18 predicted
    (17, [32, 17], (18,))
    """
    known: Dict[int, int] = {}
    if estimate is not None:
        verified = _estimated(probe, estimate, budget, lo_bound, hi_bound, start, known)
        if verified is not None:
            return verified
    return _bracket(probe, budget, lo_bound, hi_bound, start, known)


class _NoEstimate(Exception):
    """An estimate the search needed is missing (None)."""


class _Estimates:
    """``estimate`` where no real probe is known, each width estimated once; ``probe``-like for :func:`_bracket`."""

    def __init__(self, estimate: Callable[[int], Optional[int]], known: Mapping[int, int]) -> None:
        self.estimate, self.known, self.values = estimate, known, {}

    def __call__(self, f: int) -> int:
        if f in self.known:
            return self.known[f]
        if f not in self.values:
            self.values[f] = self.estimate(f)
        if self.values[f] is None:
            raise _NoEstimate
        return self.values[f]


def _estimated(probe: Callable[[int], int], estimate: Callable[[int], Optional[int]], budget: float, lo_bound: int,
               hi_bound: int, start: int, known: Dict[int, int]) -> Optional[WidthSearch]:
    """The search on ``estimate`` (after one real probe at ``start``), verified by a real probe of its width and
    an agreed prediction or a real probe of the next; None where an estimate is missing or a real probe
    disagrees (``known`` keeps the real probes)."""
    first = min(max(start, lo_bound), hi_bound)
    try:
        known[first] = probe(first)
    except InvalidWidth:
        return None
    guesses = _Estimates(estimate, dict(known))
    try:
        w = _bracket(guesses, budget, lo_bound, hi_bound, first, {first: known[first]}).width
        if w is None:
            return None  # nothing within budget, by the estimates: let the real search prove it
        if w not in known:
            known[w] = probe(w)
        agreed = w != first and known[w] == guesses.values.get(w) and estimate(first) == known[first]
        predicted = (w + 1,) if agreed and w + 1 in guesses.values else ()
        if w < hi_bound and w + 1 not in known and not predicted:
            known[w + 1] = probe(w + 1)
    except (_NoEstimate, InvalidWidth):  # an estimate it cannot give, a width valid below but not above
        return None
    probes = {**known, **{f: guesses.values[f] for f in predicted}}
    if probes[w] > budget or (w < hi_bound and probes[w + 1] <= budget):
        return None
    if any(f > w and value <= budget for f, value in known.items()):  # pragma: no cover - probe not monotone
        return None
    return WidthSearch(w, probes, capped=w == hi_bound, predicted=predicted)


def _bracket(probe: Callable[[int], int], budget: float, lo_bound: int, hi_bound: int, start: int,
             known: Dict[int, int]) -> WidthSearch:
    """The bracket search of :func:`widest_width`, over ``probe``, reusing the probes in ``known``."""
    lo: Optional[int] = None  # widest known within budget
    hi: Optional[int] = None  # narrowest known over budget
    for f, value in known.items():
        if value <= budget:
            lo = f if lo is None else max(lo, f)
        else:
            hi = f if hi is None else min(hi, f)
    f = min(max(start, lo_bound), hi_bound)
    for _ in range(200):
        if f not in known:
            try:
                value = probe(f)
            except InvalidWidth:
                if any(k < f for k in known):
                    raise  # invalid above a valid width: not a lower bound of the domain
                lo_bound = f + 1  # widths up to f are invalid for the model: the domain starts above
                if lo_bound > hi_bound or (hi is not None and lo_bound >= hi):
                    return WidthSearch(None, known)
                f = lo_bound if hi is None else min(lo_bound, hi - 1)
                continue
            known[f] = value
            if value <= budget:
                lo = f if lo is None else max(lo, f)
            else:
                hi = f if hi is None else min(hi, f)
        if hi is not None and hi == lo_bound:
            return WidthSearch(None, known)
        if lo is not None and lo == hi_bound:
            return WidthSearch(lo, known, capped=True)
        if lo is not None and hi is not None and hi == lo + 1:
            return WidthSearch(lo, known)
        candidate = _next_probe(known, budget, lo, hi, lo_bound if lo is None else lo + 1,
                                hi_bound if hi is None else hi - 1)
        if candidate is None:  # pragma: no cover - bracket exhausted
            return WidthSearch(lo, known)
        f = candidate
    raise RuntimeError("width search did not converge")  # pragma: no cover
