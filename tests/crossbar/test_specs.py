"""Hardware specs: validation at construction, parsing at the CLI edge."""
import dataclasses

import pytest

from graphcost import UserError
from graphcost.crossbar.specs import ArraySpec, ChipSpec, NoiseSpec, parse_crossbar, parse_noise


@pytest.mark.parametrize("text, expected", [("256x256", (256, 256)), ("128X64", (128, 64)), (" 1 x 1 ", (1, 1))])
def test_parse_crossbar(text, expected):
    assert parse_crossbar(text) == expected


@pytest.mark.parametrize("text", ["256x", "x256", "0x256", "256x0", "-1x4", "256", "256x256x2", "axb", ""])
def test_parse_crossbar_rejects(text):
    with pytest.raises(UserError, match="crossbar"):
        parse_crossbar(text)


def test_array_defaults_and_columns_per_weight():
    a = ArraySpec(256, 256)
    assert (a.weight_bits, a.cell_bits, a.differential, a.dac_bits, a.adc_bits, a.analog_bias) == (8, 2, True, 8, 8,
                                                                                                     False)
    assert a.slices == 4 and a.columns_per_weight == 8
    assert ArraySpec(256, 256, weight_bits=8, cell_bits=3).slices == 3  # ceil(8 / 3)
    assert ArraySpec(256, 256, weight_bits=4, cell_bits=4, differential=False).columns_per_weight == 1
    assert ArraySpec(64, 32).cells == 2048 and ArraySpec(64, 32).label == "64x32"


@pytest.mark.parametrize("kwargs, needle", [
    (dict(rows=0, cols=256), "rows"),
    (dict(rows=256, cols=-3), "columns"),
    (dict(rows=256, cols=256, weight_bits=-1), "weight bits"),
    (dict(rows=256, cols=256, cell_bits=0), "cell bits"),
    (dict(rows=256, cols=256, weight_bits=4, cell_bits=8), "cannot exceed"),
    (dict(rows=256, cols=256, dac_bits=0), "dac bits"),
    (dict(rows=256, cols=256, adc_bits=-8), "adc bits"),
    (dict(rows=2.5, cols=256), "integer"),
])
def test_array_rejects_bad_values(kwargs, needle):
    with pytest.raises(UserError, match=needle):
        ArraySpec(**kwargs)


def test_specs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ArraySpec(256, 256).rows = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        ChipSpec().arrays = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        NoiseSpec().read = 0.1


def test_chip_validation():
    assert ChipSpec().arrays is None and ChipSpec().mvm_latency_ns == 100
    with pytest.raises(UserError, match="arrays"):
        ChipSpec(arrays=0)
    with pytest.raises(UserError, match="mvm latency"):
        ChipSpec(mvm_latency_ns=0)
    with pytest.raises(UserError, match="write time"):
        ChipSpec(write_ns_per_row=-1)


def test_noise_presets_and_validation():
    assert NoiseSpec.none().is_ideal and not NoiseSpec.pcm().is_ideal
    pcm = NoiseSpec.pcm()
    # aihwkit PCMLikeNoiseModel: programming std polynomial (uS at 25 uS), drift floors, 1/f Q_s
    assert pcm.programming_poly_uS == (0.26348, 1.9650, -1.1731) and pcm.g_max_uS == 25.0
    assert (pcm.drift_nu, pcm.drift_nu_std, pcm.drift_vs_conductance) == (0.049, 0.008, True)
    assert pcm.read_1f == 0.0088 and pcm.t_read_seconds == 250e-9 and pcm.t_seconds == 3600
    assert pcm.drift_compensation == "global" and pcm.to_dict()["programming_poly_uS"] == [0.26348, 1.965, -1.1731]
    assert NoiseSpec.rram().stuck_at_on == 0.0904 and NoiseSpec.rram().stuck_at_off == 0.0175
    for bad in (dict(read=-0.1), dict(stuck_at_on=1.5), dict(stuck_at_on=0.6, stuck_at_off=0.6),
                dict(programming=float("nan")), dict(t_seconds=float("inf")), dict(drift_compensation="local"),
                dict(programming_poly_uS=[1.0]), dict(g_max_uS=0.0), dict(drift_nu_std=-1.0)):
        with pytest.raises(UserError, match="noise"):
            NoiseSpec(**bad)


def test_parse_noise():
    assert parse_noise("none") == NoiseSpec()
    assert parse_noise("pcm") == NoiseSpec.pcm()
    assert parse_noise("programming=0.02,read=0.01") == NoiseSpec(programming=0.02, read=0.01)
    assert parse_noise("pcm,drift_nu=0") == dataclasses.replace(NoiseSpec.pcm(), drift_nu=0.0)
    assert parse_noise("stuck-at-on=0.01").stuck_at_on == 0.01
    spec = parse_noise("pcm,programming_poly_uS=0.5:1,drift_vs_conductance=false,drift_compensation=none")
    assert spec.programming_poly_uS == (0.5, 1.0) and not spec.drift_vs_conductance
    assert spec.drift_compensation == "none"


@pytest.mark.parametrize("text, needle", [
    ("bogus=1", "unknown noise key"), ("gaussian", "unknown noise preset"), ("read=abc", "expects a number"),
    ("read", "unknown noise preset"), ("pcm,none", "not KEY=VALUE"), ("", "noise is none, pcm"),
    ("read=-1", "noise read"), ("drift_vs_conductance=maybe", "true or false"),
    ("programming_poly_uS=1:x", "separated by ':'"), ("drift_compensation=local", "noise drift compensation"),
])
def test_parse_noise_rejects(text, needle):
    with pytest.raises(UserError, match=needle):
        parse_noise(text)
