"""The view page in a real Chromium (system package, driven by Playwright): one browser for the module.

The browser comes from the ``chromium_executable`` fixture (tests/conftest.py), which installs the system
package where it is missing: these tests run, never skip, on a fresh machine.
"""

import pytest

import graphcost
from graphcost.models import get_model
from graphcost.passes.anytime import needed_calls
from graphcost.viewer import read_blocks, render_html

SHAPE = (1, 3, 64, 96)


@pytest.fixture(scope="module")
def itnet_trace():
    return graphcost.trace(get_model("itnet", dataset="camvid", shared=True, N=3, f=12), SHAPE)


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    from graphcost.cli import main

    path = tmp_path_factory.mktemp("browser") / "itnet.html"
    assert main(["view", "itnet", "--shared", "--param", "N=3", "--param", "f=12", "--input", "64x96",
                 "--crossbar", "64x64", "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def browser(chromium_executable):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_executable, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser, page_file):
    """The page, opened once; every console error and every request it makes is recorded."""
    pg = browser.new_page(viewport={"width": 1280, "height": 860})
    pg.errors, pg.requests = [], []
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("request", lambda r: pg.requests.append(r.url))
    pg.goto(page_file.as_uri())
    pg.wait_for_selector("body[data-ready=true]", timeout=30_000)
    yield pg
    pg.close()


def _click_node(pg, name):
    """Centre the node named ``name`` and click it with the mouse, as a user would."""
    node_id = pg.evaluate("""name => {
        const v = graphcostView, id = v.drawnNodeIds().find(i => v.nodeName(i) === name);
        v.cy.zoom(1.5); v.cy.center(v.cy.getElementById(id)); return id; }""", name)
    box = pg.locator("#cy").bounding_box()
    pos = pg.evaluate("id => graphcostView.cy.getElementById(id).renderedPosition()", node_id)
    pg.mouse.click(box["x"] + pos["x"], box["y"] + pos["y"])
    return node_id


def test_drawn_nodes_are_the_loop_graph(page, itnet_trace):
    names = page.evaluate("graphcostView.drawnNodeIds().map(graphcostView.nodeName)")
    assert sorted(names) == sorted(itnet_trace.loop_graph.nodes)
    assert f"{itnet_trace.loop_graph.number_of_nodes()} in the loop-keeping graph" in page.inner_text("#counts")


def test_clicked_node_shows_the_macs_of_the_json(page, page_file):
    blocks = read_blocks(page_file.read_text())
    layer = next(l for l in blocks["analysis"]["layers"] if l["calls"] == 3 and l["kind"] == "conv")
    _click_node(page, layer["name"])
    page.wait_for_selector("#node-table")
    assert page.inner_text("#node-info h2") == layer["name"]
    cell = page.locator("#node-table tr", has_text="macs").first.locator("td").nth(1)
    assert int(cell.get_attribute("data-value")) == layer["macs"]
    assert f"{layer['macs']:,}" in cell.inner_text()
    tiles = page.locator("#node-table tr", has_text="map: tiles").first.locator("td").nth(1)
    mapped = next(l for l in blocks["map"]["layers"] if l["name"] == layer["name"])
    assert int(tiles.get_attribute("data-value")) == mapped["tiles"]
    energy = page.locator("#node-table tr", has_text="map: energy_j").first.locator("td").nth(1)
    assert float(energy.get_attribute("data-value")) == mapped["energy_j"]


def test_map_panel_shows_fit_slowest_stage_and_energy(page, page_file):
    m = read_blocks(page_file.read_text())["map"]
    summary = page.inner_text("#map-summary")
    assert m["bottleneck"] in summary and f"{m['arrays_used']:,}" in summary
    per_frame = page.locator("#map-summary tr", has_text="energy.per_frame_j").first.locator("td").nth(1)
    assert float(per_frame.get_attribute("data-value")) == m["energy"]["per_frame_j"]
    assert page.locator("#map-layers tr").count() == len(m["layers"]) + 1


def test_output_1_highlights_the_subgraph_it_needs(page, itnet_trace, page_file):
    page.select_option("#output-select", "1")
    needed = {itnet_trace.layer_of(c) for c in needed_calls(itnet_trace, itnet_trace.outputs[0])}
    shown = page.evaluate("graphcostView.neededIds().map(graphcostView.nodeName)")
    assert set(shown) == needed and len(needed) < itnet_trace.loop_graph.number_of_nodes()
    first = read_blocks(page_file.read_text())["analysis"]["outputs"][0]
    macs = page.locator("#output-table tr", has_text="MACs").first.locator("td").nth(1)
    assert int(macs.get_attribute("data-value")) == first["macs"]
    page.select_option("#output-select", "0")
    assert len(page.evaluate("graphcostView.neededIds()")) == itnet_trace.loop_graph.number_of_nodes()


def test_dag_toggle_collapse_and_search(page, itnet_trace):
    page.check("input[name=view][value=dag]")
    assert len(page.evaluate("graphcostView.drawnNodeIds()")) == itnet_trace.dag.number_of_nodes()
    page.check("input[name=view][value=loop]")
    page.click("#collapse-shared")
    labels = page.evaluate("graphcostView.cy.nodes('.module').map(n => n.data('label'))")
    # the shared block is one node with its calls (its mixing part skips iteration 1: 2 calls)
    assert any(label.startswith("▸ block ×2–3\n") for label in labels), labels
    assert len(page.evaluate("graphcostView.drawnNodeIds()")) < itnet_trace.loop_graph.number_of_nodes()
    page.click("#expand-all")
    page.fill("#search", "classifiers.2")
    hits = page.evaluate("graphcostView.cy.nodes('.match').map(n => "
                         "graphcostView.nodeName(n.id()) + ' in ' + graphcostView.nodeScope(n.id()))")
    assert hits and all("classifiers.2" in h for h in hits), hits
    assert any(h.startswith("classifiers.2.conv") for h in hits), hits
    page.fill("#search", "")


def test_longest_path_has_latency_layers_weight_nodes(page, page_file):
    a = read_blocks(page_file.read_text())["analysis"]
    page.check("input[name=view][value=dag]")
    n_weight = page.evaluate("graphcostView.cy.nodes('.critical.weight').length")
    # highlighting draws a border: the nodes keep their size
    assert page.evaluate("graphcostView.cy.nodes('.critical').every(n => n.width() === n.data('w'))")
    page.check("input[name=view][value=loop]")
    assert n_weight == a["latency_layers"]


def test_no_console_error_and_no_network_request(page, page_file):
    assert page.errors == []
    assert page.requests == [page_file.as_uri()]


def test_analysis_without_its_trace_renders_the_tables(browser, tmp_path):
    a = graphcost.analyze(get_model("itnet", dataset="camvid", shared=True, N=2, f=8), SHAPE)
    path = tmp_path / "tables.html"
    path.write_text(render_html(a))
    pg = browser.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(path.as_uri())
    pg.wait_for_selector("body[data-ready=true]", timeout=30_000)
    macs = pg.locator("#analysis-summary tr", has_text="MACs").first.locator("td").nth(1)
    assert int(macs.get_attribute("data-value")) == a.macs
    assert "No graph" in pg.inner_text("#cy") and errors == []
    pg.close()


def test_accuracy_against_cost_plots_every_output_of_the_json(browser, tmp_path):
    """With --accuracy the page draws the paper's Fig. 5 axes per output: each point is the JSON's score."""
    from graphcost.cli import main

    path = tmp_path / "acc.html"
    assert main(["view", "itnet", "--shared", "--param", "N=3", "--param", "f=8", "--input", "32x48",
                 "--crossbar", "64x64", "--accuracy", "--samples", "2", "--trials", "1", "--out", str(path)]) == 0
    outputs = read_blocks(path.read_text())["map"]["accuracy"]["outputs"]
    pg = browser.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(path.as_uri())
    pg.wait_for_selector("body[data-ready=true]", timeout=30_000)
    keys = pg.eval_on_selector_all("#fig5 svg", "els => els.map(e => e.dataset.key)")
    assert keys == ["fig5-graph_size_bytes", "fig5-latency_layers", "fig5-macs", "fig5-params", "fig5-map_energy_j"]
    titles = pg.eval_on_selector_all('#fig5 svg[data-key="fig5-macs"] circle[data-series="simulated miou"] title',
                                     "els => els.map(e => e.textContent)")
    assert [t.split(": ")[1].split(" at")[0] for t in titles] == [f"{o['miou']:.4f}" for o in outputs]
    pg.click('#fig5 svg[data-key="fig5-macs"] circle[data-output="2"][data-series="simulated miou"]')
    assert pg.input_value("#output-select") == "2" and errors == []
    pg.close()


@pytest.mark.parametrize("direction", ["TB", "LR"])
def test_big_graph_layered_drawing_flows_one_way_without_overlap(browser, tmp_path, direction):
    """Over 300 drawn nodes the page lays out ranks itself: every forward edge points down (or right), no two
    nodes overlap."""
    model = get_model("itnet", dataset="camvid", shared=False, N=6, f=8)
    path = tmp_path / "big.html"
    graphcost.view(model, (1, 3, 32, 48), out=str(path))
    pg = browser.new_page(viewport={"width": 1280, "height": 860})
    pg.goto(path.as_uri())
    pg.wait_for_selector("body[data-ready=true]", timeout=30_000)
    pg.select_option("#direction", direction)
    boxes = pg.evaluate("""() => graphcostView.cy.nodes().map(n => { const b = n.boundingBox({includeLabels: false});
        return [n.id(), b.x1, b.y1, b.x2, b.y2]; })""")
    edges = pg.evaluate("""() => graphcostView.cy.edges().not('.back').not(':loop').map(e =>
        [e.source().position(), e.target().position()])""")
    pg.close()
    assert len(boxes) > 300
    axis = "y" if direction == "TB" else "x"
    assert all(t[axis] > s[axis] for s, t in edges)
    rects = sorted(boxes, key=lambda b: b[1])
    for i, (_, x1, y1, x2, y2) in enumerate(rects):  # sweep along x: only neighbours that start before x2 can overlap
        for _, u1, v1, u2, v2 in rects[i + 1:]:
            if u1 >= x2:
                break
            assert v1 >= y2 or v2 <= y1, "two nodes overlap"
