"""How large and how responsive ``graphcost view`` pages are: file size, build time, and in the system
Chromium (Playwright) the time to open (layout included), to switch to the DAG, and for one zoom and one
pan to be drawn (median of ``--repeats`` interleaved rounds).

    python benchmarks/bench_view.py [--repeats 5] [--models itnet-shared itnet-independent swin_t]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import graphcost
from graphcost.crossbar import ArraySpec
from graphcost.resolve import ModelSpec, build

MODELS = {
    "itnet-shared": ModelSpec("itnet", shared=True),
    "itnet-independent": ModelSpec("itnet", shared=False),
    "swin_t": ModelSpec("torchvision:swin_t"),
    "resnet18": ModelSpec("torchvision:resnet18"),
    "hf-bert-base": ModelSpec("hf:bert"),  # transformers' default bert config (bert-base), input_ids 1x128 int64
}

# one zoom step and one pan step, each timed until the browser has drawn two frames after it
_VIEWPORT_STEP = """async kind => {
  const cy = graphcostView.cy, frame = () => new Promise(r => requestAnimationFrame(() => r()));
  await frame();
  const t0 = performance.now();
  if (kind === 'zoom') cy.zoom({level: cy.zoom() * 1.6, renderedPosition: {x: 300, y: 300}});
  else cy.panBy({x: 180, y: 120});
  await frame(); await frame();
  return performance.now() - t0;
}"""


def build_page(name: str, spec: ModelSpec, folder: str):
    built = build(spec)
    path = os.path.join(folder, f"{name}.html")
    t0 = time.perf_counter()
    graphcost.view(built.module, built.call_inputs, out=path, name=built.label, array=ArraySpec(256, 256))
    return path, time.perf_counter() - t0


def browser_round(browser, path: str):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    t0 = time.perf_counter()
    page.goto("file://" + path)
    page.wait_for_selector("body[data-ready=true]", timeout=120_000)
    opened = time.perf_counter() - t0
    page.evaluate("graphcostView.cy.zoom(1); graphcostView.cy.center()")
    zoom = page.evaluate(_VIEWPORT_STEP, "zoom") / 1e3
    pan = page.evaluate(_VIEWPORT_STEP, "pan") / 1e3
    t0 = time.perf_counter()
    page.check("input[name=view][value=dag]")
    dag = time.perf_counter() - t0
    nodes = page.evaluate("graphcostView.drawnNodeIds().length")
    page.close()
    return {"open_s": opened, "zoom_s": zoom, "pan_s": pan, "dag_s": dag, "dag_nodes_drawn": nodes}


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["itnet-shared", "itnet-independent", "swin_t"],
                        choices=sorted(MODELS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as p:
        pages = {name: build_page(name, MODELS[name], folder) for name in args.models}
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        rounds = {name: [] for name in args.models}
        for _ in range(args.repeats):  # interleaved: every model once per round
            for name in args.models:
                rounds[name].append(browser_round(browser, pages[name][0]))
        browser.close()
        print("| model | loop / DAG nodes | file | build | open (layout) | zoom drawn | pan drawn | to DAG |")
        print("|---|---|---|---|---|---|---|---|")
        for name in args.models:
            path, build_s = pages[name]
            with open(path, encoding="utf-8") as fh:
                graph = graphcost.viewer.read_blocks(fh.read())["graph"]
            med = {k: statistics.median(r[k] for r in rounds[name]) for k in ("open_s", "zoom_s", "pan_s", "dag_s")}
            print(f"| {name} | {len(graph['loop']['nodes'])} / {len(graph['dag']['nodes'])} | "
                  f"{os.path.getsize(path) / 1e6:.2f} MB | {build_s:.2f} s | {med['open_s']:.2f} s | "
                  f"{med['zoom_s'] * 1e3:.0f} ms | {med['pan_s'] * 1e3:.0f} ms | {med['dag_s']:.2f} s |")


if __name__ == "__main__":
    main()
