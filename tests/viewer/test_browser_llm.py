"""The view page of a language model in Chromium: nodes coloured by resource, coverage and generation in the
mapping panel (issue 19, item 6)."""
import os
import shutil

import pytest

CHROMIUM = os.environ.get("GRAPHCOST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
GPT2 = ["hf:gpt2:causal-lm", "--param", "n_layer=1", "--param", "n_embd=64", "--param", "n_head=2", "--param",
        "vocab_size=100", "--param", "bos_token_id=0", "--param", "eos_token_id=0"]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    from graphcost.cli import main

    path = tmp_path_factory.mktemp("llm") / "gpt2.html"
    assert main(["view", *GPT2, "--input", "input_ids=1x8:int64", "--crossbar", "256x256", "--generate", "8+4",
                 "--attention", "gain-cell", "--out", str(path)]) == 0
    assert os.path.exists(CHROMIUM), f"install Chromium (apt-get install chromium); not found at {CHROMIUM}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 1280, "height": 860})
        pg.errors = []
        pg.on("pageerror", lambda e: pg.errors.append(str(e)))
        pg.goto(path.as_uri())
        pg.wait_for_selector("body[data-ready=true]", timeout=30_000)
        yield pg
        browser.close()


def test_nodes_coloured_by_resource(page):
    page.select_option("#colour-by", "resource")
    page.evaluate("graphcostView.setView('dag')")
    by_name = page.evaluate("""() => {
        const v = graphcostView, out = {};
        v.cy.nodes().forEach(n => { out[v.nodeName(n.id())] = n.data('resource'); });
        return out; }""")
    assert by_name["lm_head"] == "analog" and by_name["addmm"] == "analog"  # tied head and HF Conv1D on arrays
    assert by_name["bmm"] == by_name["bmm_1"] == "gain-cell"  # QK^T and AV in gain cells
    assert by_name["transformer_h_0_ln_1"] == "digital"
    assert "resource" in page.inner_text("#legend") and "gain-cell" in page.inner_text("#legend")
    assert page.errors == []


def test_mapping_panel_shows_coverage_and_generation(page):
    text = page.inner_text("#map-tables")
    for needle in ("MACs per frame by resource", "analog", "gain-cell", "time to first token", "tokens/s",
                   "energy per generated token", "KV cache at the end"):
        assert needle in text, needle
