"""Functional simulation of a network mapped onto analog crossbar arrays: :class:`CrossbarModel`.

By concern (as aihwkit separates noise models, conversion and modules): :mod:`.quantization`
(DAC / ADC, weight integers, bit slices), :mod:`.noise` (programming noise, faults, drift, read
noise), :mod:`.programming` (weights to conductances: :class:`ProgrammedCells`), :mod:`.layer`
(:class:`AnalogLayer`), :mod:`.convert` (:class:`CrossbarModel`); the tiles come from
:mod:`graphcost.crossbar.tiling`, the one tiler the mapping uses too.

``CrossbarModel(model, array, noise, seed=0, depthwise="dense")`` wraps a copy of ``model`` in
which every weight layer (``Conv1d/2d/3d``, ``ConvTranspose1d/2d/3d``, ``Linear``) is replaced by
an :class:`AnalogLayer`; everything else (batch norm, activations, pooling, resizing, recurrent
layers) stays digital and exact. A module called N times (ItNet's weight-shared iterative
block) is ONE analog layer: it is programmed once per seed, so all N iterations see the same
programming noise, stuck cells, drift and 1/f noise, while per-MVM read noise is drawn afresh for
every call.

The model of one layer (all conductances ``g`` relative to ``g_max = 1``)
-------------------------------------------------------------------------
*Weight matrix and tiles.* A conv's weight matrix has ``Cin/groups * prod(kernel)`` rows (one
per input element of a receptive field; a transposed conv is the equivalent direct conv over
the zero-inserted input, a linear layer has ``in_features`` rows) and one column group per
output channel, as in :mod:`graphcost.crossbar.tiling`. The rows (``+ 1`` with an analog bias
row, the matrix's last) are split into ``ceil(rows / R)`` tiles of at most ``R = array.rows``
rows, *balanced* (``ceil(rows / tiles)`` rows each, so no tile is nearly empty; a tile boundary
may cut a kernel). Grouped / depthwise convs follow the mapping's ``depthwise`` strategy; a
layer occupies as many arrays (:attr:`AnalogLayer.arrays`) as the mapping's ``tiles``:

* ``dense``: the block-diagonal ``groups*rows_g x Cout`` matrix is tiled along its rows; a tile
  holds the columns of every group it touches, and the structural zeros inside it are real
  cells programmed to 0 (they get programming noise, faults, read noise). Simplification:
  columns are assumed aligned with the row tiles, i.e. a column only sees the zero cells of
  the row tiles that hold its weights; arrays holding only structural zeros (their calibrated
  ADC range is 0) contribute nothing. With ``analog_bias`` a column's bias cell sits in the
  last row tile holding its weights (the mapping counts one shared bias row at the bottom).
* ``packed``: ``min((R - bias)//rows_g, C//cols_g)`` groups on the diagonal of one array
  (balanced over ``ceil(groups / that)`` arrays), structural zeros inside an array are cells.
* ``time-multiplexed``: every group is driven on its own (only its ``rows_g`` rows are
  active), so a column only sees its own weights; arrays are shared column-wise.

The simulation runs all tiles of a layer as ONE grouped convolution (``groups = tiles``; the
input channels a tile needs are gathered once with ``index_select``, kernel positions that are
not rows of that tile are zero and cell-free), never a Python loop over tiles or pixels. It
computes in converter units: the DAC's integers go into the conv, whose weights carry the DAC
step and each partial-sum channel's 1 / ADC step (folded once, at calibration), so the ADC only
rounds and clips; the same numbers as quantising in physical units up to float rounding (an ADC
step, rarely). 2-d activations are channels-last (``CrossbarModel(channels_last=True)``).

*Quantisation and bit slicing.* Weights are quantised per layer to signed ``weight_bits``
integers ``q = round(w / D)`` with ``D = max|W| / (2**(weight_bits-1) - 1)`` (``max`` over
weights and, with ``analog_bias``, biases). ``differential``: ``|q|`` is stored in the
positive (``q > 0``) or negative cell of a pair; otherwise one cell holds ``q + Qmax`` and the
digital periphery subtracts ``D * Qmax * sum(x)`` over the tile's rows (exact). The stored
integer is split into ``S = ceil(weight_bits / cell_bits)`` base-``2**cell_bits`` digits
``d_j``, one cell each, programmed to ``g = d_j / top_j`` where ``top_j`` is the largest digit
slice ``j`` ever holds (:func:`.programming.slice_tops`), so ``max|W|`` is programmed to ``g_max``
on its side of the pair in every slice (aihwkit's ``SinglePairConductanceConverter``); the digital
periphery shift-adds the slices: ``w = D sum_j top_j 2**(cb j) (g+_j - g-_j)``.

*Noise* (:class:`~graphcost.crossbar.specs.NoiseSpec`; the ``pcm`` preset is aihwkit's
``PCMLikeNoiseModel`` statistic by statistic: Nandakumar et al., ICECS 2019; Joshi et al.,
Nat. Commun. 11, 2473, 2020), per cell of every (polarity, slice) plane, zero cells included:

* programming: ``g <- max(0, g + N(0, sigma(g)))``, ``sigma = programming + sum_i c_i g^i / g_max_uS``
  (aihwkit's polynomial, 1.05 % of ``g_max`` at ``g = 0``, 4.2 % at ``g = 1``), drawn ONCE per
  seed; the clamp at 0 is aihwkit's (a zero cell keeps a mean of ``0.4 sigma(0)``);
* stuck-at: each cell independently stuck at ``g_max`` (probability ``stuck_at_on``) or at 0
  (``stuck_at_off``), drawn once per seed;
* drift: ``g(t) = g (1 + t / t0) ** -nu`` with ``t0 = 20 s`` and ``t`` counted from the end of
  programming (aihwkit), a per-cell exponent ``nu = |N(mean, std)|`` drawn once per seed from the
  TARGET conductance (with ``drift_vs_conductance``: aihwkit's fits, mean ``0.049``-``0.1`` and
  spread ``0.008``-``0.045`` growing as ``g`` falls); stuck cells do not drift;
* accumulated 1/f read noise (``read_1f``): ``g(t) <- max(0, g(t) + |g(t)| Q_s(g) sqrt(ln((t + t0 +
  t_read) / (2 t_read))) N(0, 1))``, ``Q_s = min(0.2, read_1f / max(g**0.65, 1e-3))`` of the
  programmed ``g``, drawn once per evaluation time (as aihwkit's ``drift_analog_weights``): the
  same for every MVM at that time; the same seed reuses the same standard normals at every time
  (common random numbers, so curves over time are smooth);
* *global drift compensation* (``drift_compensation="global"``; Joshi et al. 2020, aihwkit's
  ``GlobalDriftCompensation``): a reference read of the layer at time ``t`` gives
  ``sum|w(programmed)| / sum|w(t)|`` over its recombined weights, and the digital periphery
  multiplies the layer's outputs by it *after* the ADC, so drift costs ADC resolution and
  amplifies noise instead of shrinking the outputs; ``"none"`` leaves the outputs drifted;
* per-MVM read noise (``read``): every cell fluctuates by ``N(0, read)`` independently for every
  MVM. A column's partial sum then carries Gaussian noise of std ``read * sqrt(sum_i x_i**2)``
  (recombined over slices and pair) over the tile's active rows; this is sampled *exactly in
  distribution* per output element, ``sum_i x_i**2`` coming from one cheap grouped conv (the
  standard normals come from a 65536-level quantile table, see :func:`.noise.gaussian`).

*Periphery.* DAC: inputs are quantised per layer to ``dac_bits`` over ``[0, xmax]`` (unsigned,
when the calibration saw no negative input) or ``[-xmax, xmax]``, ``xmax`` = the largest
``|x|`` that layer saw in calibration; larger inputs clip. ADC: every tile's partial sums are
quantised to ``adc_bits`` over ``[-r, r]`` (``[0, r]`` if no calibration partial sum was
negative), ``r`` = the largest noise-free partial sum of that array (row tile x column tile, the
``cols`` physical columns of one array) in calibration; noisy sums beyond it clip. Partial
sums of the tiles are added digitally, then drift compensation, then the digital bias (or,
with ``analog_bias``, the bias cells are an extra row driven by 1 in each column's last tile).

*Calibration.* :meth:`CrossbarModel.calibrate` (called automatically on the first forward if
you did not) runs the FLOAT model on a batch and records, per analog layer over all its calls,
the input range (DAC) and the per-array range of the noise-free partial sums of the quantised
weights at ``t0`` (ADC). Ranges are then fixed, as on a chip; they do not depend on the seed.

*ADC placement: fast mode and exact slice mode.* Default (``slice_adc=False``, "fast"): the
noisy, drifted cells of all slices (and both cells of a pair) are recombined into one
effective weight per tile before the convolution and the ADC quantises the tile's combined
partial sum. This is exact for everything but the ADC: a chip digitises every slice's column
(pair) separately and shift-adds the digital values, which adds ``S`` quantisation errors
scaled by ``2**(cb j)`` instead of one. ``slice_adc=True`` does exactly that (``S`` times the
partial sums, slower). With ``weight_bits = cell_bits = 16``, 16-bit DAC/ADC and no noise both
modes equal the float model to ~1e-4 relative.

Random numbers: one ``torch.Generator`` each for programming noise, stuck-at faults, per-MVM
read noise, drift exponents and 1/f read noise, all derived from ``seed``; the same seed gives the same result, and different noise
magnitudes with the same seed share the underlying draws (common random numbers).
"""
from .convert import ANALOG_TYPES, CrossbarModel
from .layer import AnalogLayer
from .noise import DRIFT_T0_SECONDS
from .programming import ProgrammedCells

__all__ = ["CrossbarModel", "AnalogLayer", "ProgrammedCells", "DRIFT_T0_SECONDS", "ANALOG_TYPES"]
