"""Any model on the simulator: torchvision, timm and HF models through ``graphcost map --accuracy``, HF
``Conv1D`` on arrays, ``graphcost.crossbar.simulate``, and bad input as one line and exit 2."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from graphcost.cli import main
from graphcost.crossbar import simulate
from graphcost.crossbar.specs import ArraySpec, NoiseSpec

EXACT = ArraySpec(256, 256, weight_bits=16, cell_bits=16, dac_bits=16, adc_bits=16)
GPT2 = ["hf:gpt2:causal-lm", "--param", "n_layer=1", "--param", "n_embd=32", "--param", "n_head=2",
        "--param", "n_positions=32", "--param", "vocab_size=256", "--input", "input_ids=1x16:int64"]
SMALL = ["--samples", "2", "--trials", "1", "--format", "json"]


def run(capsys, *args):
    rc = main(["map", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def _gpt2():
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, n_positions=32, vocab_size=256)
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config).eval()


def test_hf_conv1d_layers_are_simulated_on_arrays():
    model = _gpt2()
    ids = torch.randint(0, 256, (2, 16))
    sim = simulate(model, EXACT, NoiseSpec(), calibrate_with={"input_ids": ids})
    names = set(sim.analog_layers)
    assert {"transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_fc",
            "transformer.h.0.mlp.c_proj", "lm_head"} <= names
    assert not any("wte" in n or "ln" in n for n in names)  # embeddings and norms stay digital
    with torch.inference_mode():
        ref, out = model(input_ids=ids).logits, sim(input_ids=ids).logits
    assert torch.allclose(out, ref, atol=2e-3 * float(ref.abs().max()))
    noisy = simulate(model, ArraySpec(256, 256), NoiseSpec.pcm(), t_seconds=86400, calibrate_with={"input_ids": ids})
    with torch.inference_mode():
        err = float((noisy(input_ids=ids).logits - ref).norm() / ref.norm())
    assert 0.005 < err < 1.0


def test_map_torchvision_on_random_data(capsys):
    pytest.importorskip("torchvision")
    rc, out, err = run(capsys, "torchvision:resnet18", "--input", "1x3x32x32", "--accuracy", "--data", "random",
                       "--noise", "pcm", *SMALL)
    assert rc == 0, err
    acc = json.loads(out)["accuracy"]
    assert acc["task"] == "none" and acc["metric"] == "fidelity_top1" and 0 <= acc["fidelity_top1"] <= 1
    assert {"snr_db", "relative_error"} <= set(acc) and "miou" not in acc and "top1" not in acc


def test_map_hf_gpt2_on_pydoc_over_time(capsys):
    pytest.importorskip("transformers")
    rc, out, err = run(capsys, *GPT2, "--accuracy", "--data", "pydoc", "--noise", "pcm", "--times", "1h,1d", *SMALL)
    assert rc == 0, err
    acc = json.loads(out)["accuracy"]
    assert acc["task"] == "language-model" and acc["metric"] == "perplexity"
    assert [t["t_seconds"] for t in acc["times"]] == [3600.0, 86400.0]
    for t in acc["times"]:
        assert t["perplexity"] > 1 and 0 <= t["next_token_top1"] <= 1 and 0 <= t["fidelity_top1"] <= 1
        assert t["float_perplexity"] > 1


def _imagefolder(root):
    rng = np.random.RandomState(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray((rng.rand(12, 12, 3) * 255).astype(np.uint8)).save(root / c / f"{i}.png")


def test_map_timm_on_an_image_folder_with_user_weights(capsys, tmp_path):
    timm = pytest.importorskip("timm")
    _imagefolder(tmp_path / "imgs")
    params = ["--param", "img_size=32", "--param", "patch_size=16", "--param", "num_classes=2", "--param", "depth=1"]
    model = timm.create_model("deit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=16, num_classes=2,
                              depth=1)
    torch.save(model.state_dict(), tmp_path / "my.pt")
    rc, out, err = run(capsys, "timm:deit_tiny_patch16_224", *params, "--input", "1x3x32x32", "--accuracy",
                       "--data", f"imagefolder:{tmp_path / 'imgs'}", "--weights", str(tmp_path / "my.pt"), *SMALL)
    assert rc == 0, err
    acc = json.loads(out)["accuracy"]
    assert acc["task"] == "classification" and acc["metric"] == "top1" and "top5" not in acc
    assert 0 <= acc["top1"] <= 1 and acc["fidelity_top1"] == pytest.approx(1.0, abs=0.5)
    # --weights of another model: one line, exit 2, nothing on stdout
    torch.save(torch.nn.Linear(3, 2).state_dict(), tmp_path / "other.pt")
    rc, out, err = run(capsys, "timm:deit_tiny_patch16_224", *params, "--input", "1x3x32x32", "--accuracy",
                       "--data", f"imagefolder:{tmp_path / 'imgs'}", "--weights", str(tmp_path / "other.pt"), *SMALL)
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and "does not fit the model" in err


@pytest.mark.parametrize("data, match", [
    ("imagefolder:/no/such/folder", "does not exist"),
    ("text:EMPTY", "is empty"),
    ("digits", "classification set but the model returns"),
    ("pydoc", "integer inputs"),
])
def test_bad_data_is_one_line_and_exit_2(capsys, tmp_path, data, match):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    data = data.replace("EMPTY", str(empty))
    conv = ["torch.nn:Conv2d", "--param", "in_channels=1", "--param", "out_channels=10", "--param", "kernel_size=1",
            "--input", "1x1x8x8"]
    rc, out, err = run(capsys, *conv, "--accuracy", "--data", data, *SMALL)
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and match in err, err
