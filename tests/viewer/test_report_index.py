"""``graphcost report crossbar`` / ``fig5`` write an ``index.html`` holding their figures and tables together."""
import html
import json
import re

import pandas as pd
import pytest

from clirun import run
from graphcost.reports.index_page import index_html


@pytest.fixture(scope="module")
def crossbar_report(tmp_path_factory):
    from graphcost.cli import main

    out = tmp_path_factory.mktemp("xb")
    rc = main(["report", "crossbar", "itnet@shared=True,N=3,f=12", "enet", "--input", "64x96", "--crossbar",
               "128x128", "--out", str(out), "--workers", "1", "--no-store", "--format", "json"])
    assert rc == 0
    return out


def _cells(page: str):
    return [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", page)]


def test_crossbar_index_inlines_the_figure_and_every_csv_row(crossbar_report):
    page = (crossbar_report / "index.html").read_text()
    svg = (crossbar_report / "crossbar.svg").read_text()
    assert re.search(r"<svg[^>]*>", svg).group(0) in page            # the figure itself, inlined
    assert "<?xml" not in page and "default-src 'none'" in page        # one valid page that fetches nothing
    points = pd.read_csv(crossbar_report / "crossbar.csv")
    body = page.split("crossbar.csv (every plotted point)")[1]
    assert body.count("<tr>") == len(points)                           # one row per point (header styled apart)
    assert set(points["label"]) <= set(_cells(body))
    assert 'href="crossbar.png"' in page


def test_crossbar_index_summary_matches_the_json(capsys, crossbar_report, tmp_path):
    page = (crossbar_report / "index.html").read_text()
    rc, out, err = run(capsys, "report", "crossbar", "itnet@shared=True,N=3,f=12", "enet", "--input", "64x96",
                       "--crossbar", "128x128", "--out", str(tmp_path), "--workers", "1", "--no-store",
                       "--format", "json")
    assert rc == 0, err
    summary = page.split("<h2>summary</h2>")[1].split("</table>")[0]
    for model in json.loads(out)["models"]:
        assert model["model"] in summary and str(model["arrays_needed"]) in _cells(summary)


def test_index_escapes_text_and_strips_the_xml_prologue(tmp_path):
    svg = tmp_path / "f.svg"
    svg.write_text('<?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>')
    csv = tmp_path / "f.csv"
    csv.write_text("name,value\n<b>x</b>,1.5\n")
    page = index_html("a <title>", [str(svg), str(csv)])
    assert "<?xml" not in page and "<!DOCTYPE svg>" not in page and "<svg xmlns" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page and "a &lt;title&gt;" in page
