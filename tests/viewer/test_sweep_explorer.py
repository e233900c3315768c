"""The sweep explorer (issue 22, item 5) in a real Chromium: the module's browser of ``test_browser``."""
import json

import pytest

from graphcost.cli import main
from viewer.test_browser import browser  # noqa: F401  (one Chromium, obtained as the view tests obtain it)

SWEEP = ["sweep", "itnet", "--shared", "--grid", "N=1,2", "--param", "L=1", "--param", "K=1", "--input", "32x48",
         "--macs-budget", "5e6", "--grid", "hw.crossbar=64x64,128x128", "--grid", "hw.adc_bits=4,8",
         "--pareto", "energy_j,utilization", "--workers", "1", "--no-store"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("explorer")
    assert main([*SWEEP, "--out", str(out)]) == 0
    data = json.loads((out / "sweep-itnet-shared.json").read_text())
    return out, data


@pytest.fixture(scope="module")
def page(browser, swept):  # noqa: F811
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    pg.errors, pg.requests = [], []
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("request", lambda r: pg.requests.append(r.url))
    pg.goto((swept[0] / "index.html").as_uri())
    pg.wait_for_selector("body[data-ready=true]", timeout=30_000)
    yield pg
    pg.close()


def test_every_row_is_a_point_and_the_page_fetches_nothing(page, swept):
    rows = swept[1]["rows"]
    assert len(rows) == 8
    assert page.evaluate("graphcostSweep.pointCount()") == len(rows)
    assert page.evaluate("graphcostSweep.rows.length") == len(rows)
    assert page.errors == []
    assert page.requests == [(swept[0] / "index.html").as_uri()]


def test_pareto_rows_are_the_jsons(page, swept):
    expected = [i for i, r in enumerate(swept[1]["rows"]) if r["pareto"]]
    assert expected and len(expected) < 8  # the check means something
    assert page.evaluate("graphcostSweep.paretoRows()") == expected
    assert "on the Pareto front of energy_j (min) and utilization (max)" in page.inner_text("#legend")


def test_other_axes_give_the_python_front(page, swept):
    from graphcost.explore import pareto_front

    rows = swept[1]["rows"]
    page.evaluate("graphcostSweep.setAxes('macs', 'arrays_used', 'energy_j')")
    expected = [i for i, on in enumerate(pareto_front(rows, (("macs", True), ("arrays_used", True)))) if on]
    assert page.evaluate("graphcostSweep.paretoRows()") == expected
    page.evaluate("graphcostSweep.setAxes('energy_j', 'utilization')")


def test_brushing_an_axis_selects_the_rows_in_range_and_the_table_shows_them(page, swept):
    rows = swept[1]["rows"]
    energies = sorted(r["energy_j"] for r in rows)
    lo, hi = energies[2], energies[5]
    page.evaluate(f"graphcostSweep.brush('energy_j', {lo}, {hi})")
    expected = [i for i, r in enumerate(rows) if lo <= r["energy_j"] <= hi]
    assert page.evaluate("graphcostSweep.selected()") == expected
    assert page.locator("#rows tr[data-row]").count() == len(expected)
    assert page.inner_text("#count").startswith(f"{len(expected)} of 8 rows selected")
    page.evaluate("graphcostSweep.brush('energy_j', null)")
    assert len(page.evaluate("graphcostSweep.selected()")) == 8


def test_dragging_along_an_axis_brushes_it(page):
    box = page.locator("#parallel").bounding_box()
    x = page.evaluate("(() => { const cv = document.getElementById('parallel'), k = graphcostSweep.columns"
                      ".indexOf('energy_j'); return 30 + k * (cv.width - 60) / (graphcostSweep.columns.length - 1); })()")
    page.mouse.move(box["x"] + x, box["y"] + 60)
    page.mouse.down()
    page.mouse.move(box["x"] + x, box["y"] + 200)
    page.mouse.up()
    chosen = page.evaluate("graphcostSweep.selected()")
    assert 0 < len(chosen) < 8
    page.click("#clear")
    assert len(page.evaluate("graphcostSweep.selected()")) == 8


def test_clicked_row_shows_its_keys_and_a_command_that_reproduces_it(page, swept, capsys):
    rows = swept[1]["rows"]
    page.locator("#rows tr[data-row='5']").click()
    row = rows[5]
    assert page.inner_text("#detail-model").split() == ["model", "N", str(row["N"])]
    assert f"hw.crossbar\t{row['hw.crossbar']}" in page.inner_text("#detail-hardware")
    command = page.inner_text("#command")
    assert command.startswith("graphcost sweep itnet --shared")
    assert main([*command.split()[1:], "--no-store", "--format", "json"]) == 0
    again = json.loads(capsys.readouterr().out)["rows"]
    assert len(again) == 1
    assert {k: again[0][k] for k in ("f", "macs", "arrays_used", "energy_j")} == \
        {k: row[k] for k in ("f", "macs", "arrays_used", "energy_j")}


def test_report_sweep_writes_the_same_explorer_from_the_json(swept, tmp_path, capsys):
    out, data = swept
    assert main(["report", "sweep", str(out / "sweep-itnet-shared.json"), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "index.html").read_text() == (out / "index.html").read_text()


@pytest.mark.parametrize("content, needle", [("not json", "is not JSON"), ('{"a": 1}', "is not a sweep's JSON"),
                                             ('{"rows": []}', "lacks the sweep's spec")])
def test_report_sweep_refuses_bad_results_in_one_line(tmp_path, capsys, content, needle):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["report", "sweep", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err


def test_rows_travel_column_by_column_and_come_back_whole(browser, tmp_path):  # noqa: F811
    """Text columns as levels and codes, missing cells, NaN: the page's rows are the rows written (NaN and a
    missing cell as null), and a point is drawn only where both axes have a number."""
    from graphcost.explore import SweepSpec, parse_grid
    from graphcost.reports.sweep_explorer import write_explorer

    spec = SweepSpec(model="itnet", grid=parse_grid(["N=1,2,3", "hw.tech=a,b"]))
    rows = [{"N": 1, "hw.tech": "a", "f": 5, "macs": 10, "energy_j": 1.5, "status": "ok", "xs": [1, 2]},
            {"N": 2, "hw.tech": "b", "f": None, "macs": None, "status": "infeasible", "reason": "over budget"},
            {"N": 3, "hw.tech": "a", "f": 7, "macs": 20, "energy_j": float("nan"), "status": "ok", "fits": True}]
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto("file://" + write_explorer(str(tmp_path), spec, rows))
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    names = ["N", "hw.tech", "f", "macs", "energy_j", "status", "reason", "fits"]
    expected = [{k: (None if isinstance(r.get(k), float) and r[k] != r[k] else r.get(k)) for k in names} for r in rows]
    assert page.evaluate("graphcostSweep.rows") == expected
    assert page.evaluate("graphcostSweep.pointCount()") == 2 and errors == []
    page.close()
