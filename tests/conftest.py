import os
import shutil
import sys
import tempfile

import pytest
from hypothesis import settings

# Tests must not depend on the terminal they run in.
os.environ.setdefault("COLUMNS", "160")

# Property tests draw the same examples on every run ("ci", the default: no flaky CI, no example
# database written); `pytest --hypothesis-profile=fresh` draws new random ones (tests/README.md).
# A test's own @settings still sets its example count and deadline.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("fresh", derandomize=False, database=None, print_blob=True)
settings.load_profile("ci")


@pytest.fixture(scope="session", autouse=True)
def private_ray_temp_dir():
    """Ray (in this process and in every child it starts) writes its session folders into a folder of
    this run, removed at the end: nothing is left in the system temp folder, and no other Ray on the
    machine (its cluster file, its sockets) is seen. Short path: Ray's socket paths have a length limit."""
    folder = tempfile.mkdtemp(prefix="gc-ray-")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_TMPDIR", folder)
        yield folder
        ray = sys.modules.get("ray")
        if ray is not None and ray.is_initialized():
            ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def private_store(tmp_path, monkeypatch):
    """Every test gets its own result store: nothing reads or writes the user's cache."""
    monkeypatch.setenv("GRAPHCOST_STORE", str(tmp_path / "store.sqlite"))


@pytest.fixture(scope="session")
def chromium_executable():
    """A Chromium for the browser tests, installed from the system's package registry where missing.

    Fails (never skips) with one line saying how to get one where it cannot be installed: a browser test
    that did not run has not passed.
    """
    from chromium import ChromiumUnavailable, obtain_chromium

    try:
        return obtain_chromium()
    except ChromiumUnavailable as e:
        pytest.fail(str(e), pytrace=False)
