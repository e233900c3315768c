import os

# Tests must not depend on the terminal they run in.
os.environ.setdefault("COLUMNS", "160")


import pytest


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
