"""``graphcost report llm``: energy per token and tokens/s against the context, digital vs gain-cell attention."""
import json
import os

import pandas as pd

from clirun import run
from graphcost.crossbar.generation import GenerateSpec
from graphcost.crossbar.run import MapRequest, run_map
from graphcost.crossbar.specs import ArraySpec
from graphcost.resolve import ModelSpec

TINY = "hf:gpt2:causal-lm@n_layer=1,n_embd=64,n_head=2,vocab_size=100,bos_token_id=0,eos_token_id=0"


def test_llm_report_writes_the_curves_of_map_generate(capsys, tmp_path):
    out_dir = tmp_path / "llm"
    rc, out, err = run(capsys, "report", "llm", TINY, "--generate", "8+24", "--out", str(out_dir), "--format", "json")
    assert rc == 0, err
    assert sorted(os.listdir(out_dir)) == ["index.html", "llm.csv", "llm.png", "llm.svg"]
    data = json.loads(out)
    assert [m["attention"] for m in data["models"]] == ["digital", "gain-cell"]
    points = pd.read_csv(out_dir / "llm.csv")
    assert set(points["attention"]) == {"digital", "gain-cell"} and points["context"].min() == 8
    params = {"n_layer": 1, "n_embd": 64, "n_head": 2, "vocab_size": 100, "bos_token_id": 0, "eos_token_id": 0}
    gen = run_map(MapRequest(ModelSpec(name="hf:gpt2:causal-lm", params=params), ArraySpec(256, 256),
                             generate=GenerateSpec(8, 24))).to_dict()["generation"]
    digital = points[points["attention"] == "digital"]
    assert list(digital["energy_j_per_token"]) == [p["energy_j_per_token"] for p in gen["by_context"]]
    assert (digital["tokens_per_s"] * digital["s_per_token"]).round(12).eq(1).all()


def test_llm_report_refuses_an_encoder_in_one_line(capsys, tmp_path):
    rc, out, err = run(capsys, "report", "llm", "hf:bert@num_hidden_layers=1,hidden_size=32,num_attention_heads=2",
                       "--out", str(tmp_path / "x"))
    lines = [line for line in err.strip().splitlines() if not line.startswith("[transformers]")]
    assert rc == 2 and len(lines) == 1 and "encoder" in lines[0] and not (tmp_path / "x").exists()


def test_llm_report_default_fits_its_default_model():
    from graphcost.crossbar.generation import context_note, parse_generate
    from graphcost.reports.cli import DEFAULT_LLM_GENERATE, DEFAULT_LLM_MODELS
    from graphcost.resolve import build_for_shapes

    spec = GenerateSpec(*parse_generate(DEFAULT_LLM_GENERATE))
    for name in DEFAULT_LLM_MODELS:
        model = build_for_shapes(ModelSpec(name=name)).module
        assert spec.prompt_tokens + spec.generated_tokens == model.config.n_positions  # its whole context
        assert context_note(model, spec) is None


def test_llm_report_refuses_a_context_past_the_position_table_before_mapping(capsys, tmp_path):
    rc, out, err = run(capsys, "report", "llm", TINY, TINY + ",n_positions=16", "--generate", "8+9",
                       "--out", str(tmp_path / "x"))
    lines = [line for line in err.strip().splitlines() if not line.startswith("[transformers]")]
    assert rc == 2 and len(lines) == 1 and "17 positions" in lines[0] and not (tmp_path / "x").exists()
