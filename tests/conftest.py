import os

# Tests must not depend on the terminal they run in.
os.environ.setdefault("COLUMNS", "160")


import pytest


@pytest.fixture(autouse=True)
def private_store(tmp_path, monkeypatch):
    """Every test gets its own result store: nothing reads or writes the user's cache."""
    monkeypatch.setenv("GRAPHCOST_STORE", str(tmp_path / "store.sqlite"))
