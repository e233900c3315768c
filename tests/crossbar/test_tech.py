"""TechSpec presets, validation and the TOML loader."""
import math

import pytest

from graphcost import UserError
from graphcost.crossbar.tech import (HARDWARE_PRESETS, TECH_PRESETS, TechSpec, load_tech, resolve_tech,
                                     tech_from_mapping)


def test_presets_are_valid_and_named():
    assert set(TECH_PRESETS) == {"rram-22nm", "pcm-14nm", "sram-22nm", "isaac-32nm"}
    for name, tech in TECH_PRESETS.items():
        assert tech.name == name and tech.adc_energy_j(5) > 0 and tech.cell_area_um2() > 0


def test_neurosim_preset_is_param_cpp():
    preset = HARDWARE_PRESETS["neurosim-v1.3"]
    a, t = preset.array, preset.tech
    assert (a.rows, a.cols, a.weight_bits, a.cell_bits, a.dac_bits, a.adc_bits) == (128, 128, 8, 2, 8, 5)
    assert (t.node_nm, t.columns_per_adc, t.clock_hz, t.read_pulse_ns, t.cell_area_f2) == (22, 8, 1e9, 10, 48)
    assert t.post_layout_energy_factor == 1.22 and t.input_bits_per_cycle == 1


def test_adc_energy_and_area_grow_with_bits():
    for tech in TECH_PRESETS.values():
        energies = [tech.adc_energy_j(b) for b in range(1, 10)]
        areas = [tech.adc_area_um2(b) for b in range(1, 10)]
        assert all(x < y for x, y in zip(energies, energies[1:]))
        assert all(x < y for x, y in zip(areas, areas[1:]))
    isaac = TECH_PRESETS["isaac-32nm"]  # ISAAC: 2 mW at 1.28 GS/s for 8 bits
    assert isaac.adc_energy_j(8) == pytest.approx(2e-3 / 1.28e9)


def test_toml_file_overrides_a_preset(tmp_path):
    path = tmp_path / "chip.toml"
    path.write_text('base = "sram-22nm"\ncolumns_per_adc = 4\nadc_power_w_per_step = 2e-6\n')
    tech = load_tech(str(path))
    assert tech.columns_per_adc == 4 and tech.adc_power_w_per_step == 2e-6
    assert tech.cell_area_f2 == TECH_PRESETS["sram-22nm"].cell_area_f2
    assert resolve_tech(str(path)) == tech
    (tmp_path / "t.toml").write_text("[tech]\nnode_nm = 28\n")
    assert load_tech(str(tmp_path / "t.toml")).node_nm == 28


@pytest.mark.parametrize("text, message", [
    ("adc_energy = 1e-12\n", "unknown key 'adc_energy'"),           # no unit in the name
    ("cell_area = 40\n", "unknown key"),
    ("leakage_w_per_array = -1e-6\n", ">= 0"),
    ("leakage_w_per_array = nan\n", ">= 0"),
    ("columns_per_adc = 0\n", "positive integer"),
    ("adc_kind = \"pipelined\"\n", "adc_kind"),
    ("base = \"tpu\"\n", "unknown tech 'tpu'"),
    ("node_nm = = 3\n", "not valid TOML"),
    ("read_pulse_ns = \"fast\"\n", "finite number"),
])
def test_bad_tech_files_are_one_clear_error(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        load_tech(str(path))


def test_missing_file_and_unknown_preset():
    with pytest.raises(UserError, match="cannot be read"):
        load_tech("/nonexistent/chip.toml")
    with pytest.raises(UserError, match="unknown tech"):
        resolve_tech("tpu-7nm")
    with pytest.raises(UserError, match="> 0"):
        tech_from_mapping({"clock_hz": 0})
    assert not math.isnan(TechSpec(**{**TECH_PRESETS["rram-22nm"].to_dict()}).node_nm)
