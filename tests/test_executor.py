import select
import sys
import time

import pytest

from graphcost import UserError
from graphcost.runtime.executor import InlineExecutor, LocalExecutor, ProgressBar, make_executor


def square(x):
    return x * x


def slow_first(x):
    # Items finish in reverse order: the first sleeps longest.
    time.sleep(0.05 * (3 - x) if x < 3 else 0)
    return x * 10


def fail_on_two(x):
    if x == 2:
        raise UserError("item two is bad")
    return x


def test_workers_one_runs_inline_in_order():
    with make_executor("local", workers=1) as ex:
        assert isinstance(ex, InlineExecutor)
        assert ex.map(square, range(5)) == [0, 1, 4, 9, 16]


def test_local_pool_returns_input_order_and_reports_progress():
    seen = []
    with make_executor("local", workers=2) as ex:
        assert isinstance(ex, LocalExecutor) and ex.workers == 2
        out = ex.map(slow_first, [0, 1, 2, 3], progress=lambda done, total: seen.append((done, total)))
        assert out == [0, 10, 20, 30]
        order = [i for i, _ in ex.as_completed(slow_first, [0, 1, 2, 3])]
        assert sorted(order) == [0, 1, 2, 3]
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert ex._pool is None  # the context manager closed the pool


def test_worker_user_error_arrives_as_itself():
    with make_executor("local", workers=2) as ex:
        with pytest.raises(UserError, match="item two is bad"):
            ex.map(fail_on_two, [0, 1, 2, 3])


def test_bad_kinds_and_options_are_user_errors():
    with pytest.raises(UserError, match="unknown executor"):
        make_executor("spark")
    with pytest.raises(UserError, match="address is for the ray executor"):
        make_executor("local", address="auto")
    with pytest.raises(UserError, match="at least 1"):
        make_executor("local", workers=0)


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(UserError, match=r"pip install -e '\.\[ray\]'"):
        make_executor("ray")


def test_progress_bar_is_silent_off_a_terminal(capsys):
    with ProgressBar("x", 3, enabled=False) as bar:
        bar(1, 3)
        bar(3, 3)
    assert capsys.readouterr().err == ""


def test_unreachable_ray_address_fails_fast():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # How fast it gives up is a benchmark's business; the test's own timeout only catches a hang.
    with pytest.raises(UserError, match="cannot reach the Ray cluster"):
        make_executor("ray", address=f"127.0.0.1:{port}")


def _listening(process):
    """(process name, address) of every listening inet socket of ``process`` and its descendants."""
    import psutil

    found = []
    for p in [process] + process.children(recursive=True):
        try:
            found += [(p.name(), c.laddr.ip) for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        except psutil.Error:  # a process that ended meanwhile
            pass
    return found


def test_local_ray_listens_on_loopback_only():
    import ipaddress

    import psutil

    with make_executor("ray", workers=1) as ex:
        assert ex.map(square, [3]) == [9]
        sockets = _listening(psutil.Process())
    assert len(sockets) >= 3  # GCS, raylet, workers: the check inspects real sockets
    exposed = [(name, ip) for name, ip in sockets if not ipaddress.ip_address(ip.replace("::ffff:", "")).is_loopback]
    assert not exposed, exposed


def test_local_ray_dies_with_a_killed_driver():
    import subprocess

    import psutil

    code = ("from graphcost.runtime.executor import make_executor; ex = make_executor('ray', workers=1); "
            "print('ready', flush=True); import time; time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 300)  # a ceiling that only catches a hang
        assert ready and proc.stdout.readline().strip() == "ready"
        started = psutil.Process(proc.pid).children(recursive=True)
        assert len(started) >= 3  # GCS, raylet, agents, the watcher
    finally:
        proc.kill()
        proc.wait()
    # They go when the driver dies (zombies count as gone); 60 s only catches survivors on a busy machine.
    deadline = time.monotonic() + 60
    alive = started
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for p in alive:
        p.kill()
    assert not alive, [p.name() for p in alive]


def test_progress_bar_rate_column_counts_items_per_second():
    from types import SimpleNamespace

    from graphcost.runtime.executor import RateColumn

    column = RateColumn("points")
    assert column.render(SimpleNamespace(completed=150, elapsed=2.0)).plain == "75.0 points/s"
    assert column.render(SimpleNamespace(completed=0, elapsed=None)).plain == "0.0 points/s"


def test_sweep_on_a_ray_address_nobody_answers_is_one_line_before_any_point(capsys, tmp_path):
    import socket

    from clirun import run

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = tmp_path / "s.sqlite"
    rc, out, err = run(capsys, "sweep", "itnet", "--grid", "N=1,2", "--input", "32x48", "--executor", "ray",
                       "--address", f"127.0.0.1:{port}", "--store", str(store))
    assert rc == 2 and err.count("\n") == 1 and "cannot reach the Ray cluster" in err, err
    from graphcost.runtime.store import open_store

    assert len(open_store(str(store))) == 0


def imported(name):
    return name in sys.modules


def test_preload_imports_once_before_the_workers_fork_and_only_if_they_start(tmp_path, monkeypatch):
    name = "graphcost_preload_probe"
    (tmp_path / f"{name}.py").write_text("LOADED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with make_executor("local", workers=1) as inline:
        inline.preload([name])
        assert inline.map(imported, [name]) == [False]  # inline: the items import what they need
    with LocalExecutor(workers=2, start_method="fork") as ex:
        ex.preload([name])
        assert ex.map(imported, [name]) == [False] and name not in sys.modules  # one item: no pool, no import
        assert ex.map(imported, [name, name]) == [True, True]  # the workers inherited it
        assert name in sys.modules
    monkeypatch.delitem(sys.modules, name)
