"""``graphcost report drift``: accuracy vs time for shipped float and HWA weights; bad input fails first."""
import pandas as pd
import pytest

from clirun import run


def test_drift_report_writes_the_figure_and_the_points(capsys, tmp_path):
    rc, out, err = run(capsys, "report", "drift", "digits-cnn", "--samples", "30", "--trials", "1",
                       "--times", "1h,1y", "--out", str(tmp_path))
    assert rc == 0, err
    assert {p.name for p in tmp_path.iterdir()} == {"drift.png", "drift.svg", "drift.csv", "index.html"}
    frame = pd.read_csv(tmp_path / "drift.csv")
    page = (tmp_path / "index.html").read_text()
    assert "<svg" in page and page.count("<tr>") == len(frame)  # the figure and a row per plotted point
    assert set(frame["weights"]) == {"post-training", "HWA"} and set(frame["t_seconds"]) == {3600.0, 31536000.0}
    assert (frame["metric"] == "top1").all() and frame["score"].between(0, 1).all()
    assert "post-training" in out and "HWA" in out


@pytest.mark.parametrize("args, needle", [
    (["enet"], "ships trained weights"),
    (["digits-cnn", "--times", "1h,-1d"], "negative"),
    (["digits-cnn", "--noise", "bogus"], "unknown noise preset"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(capsys, tmp_path, args, needle):
    rc, _, err = run(capsys, "report", "drift", *args, "--out", str(tmp_path))
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
