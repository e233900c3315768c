import os

import pandas as pd
import pytest

import graphcost
from graphcost import UserError
from graphcost.runtime.store import _arrow_columns, NullStore, ResultStore, default_store_path, open_store, result_key


def test_roundtrip_and_frame(tmp_path):
    path = str(tmp_path / "sub" / "results.sqlite")
    key = result_key("sweep-point", model="itnet", params={"N": 2, "L": 1}, input_shape=(1, 3, 64, 96))
    with open_store(path) as store:
        assert store.get(key) is None and key not in store
        store.put(key, {"kind": "sweep-point", "model": "itnet"}, {"f": 53, "macs": 19_776_192, "xs": [1, 2]})
        assert store.get(key) == {"f": 53, "macs": 19_776_192, "xs": [1, 2]}
        assert key in store and len(store) == 1
        assert store.get_many([key, "missing"]) == {key: store.get(key)}
        frame = store.frame("sweep-point")
        assert list(frame["f"]) == [53] and frame["meta.model"].iloc[0] == "itnet"
    with ResultStore(path) as again:  # persisted on disk
        assert again.get(key)["f"] == 53



ROWS = [  # what sweeps store: ints, floats, bools, strings, lists, None where a point failed
    {"N": 1, "f": 53, "macs": 19_776_192, "fits": True, "tech": "rram-22nm", "xs": [1, 2], "energy_j": 1.5e-3},
    {"N": 2, "f": None, "macs": None, "fits": None, "tech": "pcm-14nm", "xs": None, "energy_j": None,
     "status": "infeasible", "reason": "over the budget"},
    {"N": 3, "f": 7, "macs": 2**40, "fits": False, "tech": "2024-01-01", "xs": [], "energy_j": 2.0},
]


def _nulls_as_none(frame):
    """A key a row lacks is NaN in pandas' object columns and None in Arrow's: both are a missing value."""
    frame = frame.copy()
    for name in frame.columns[frame.dtypes == object]:
        frame[name] = [None if not isinstance(v, (list, dict)) and pd.isna(v) else v for v in frame[name]]
    return frame


@pytest.mark.parametrize("odd, columns", [(None, True), ({"v": float("nan")}, True), ({"v": 1}, True), ({"v": 0.00013752750000000003}, True),
                                          ({"v": 2**70}, False), ({"xs": [3, 2**70]}, False), ({"v": {"nested": 1}}, False), ({"N": "one"}, False)])
def test_frame_columns_read_as_the_row_dicts_give_them(tmp_path, odd, columns):
    """The column-wise reader (pyarrow) and the row-wise one build the same frame; rows pyarrow cannot read
    like pandas (integers beyond 64 bits, a nested object, a type changing between rows) fall back to the
    row-wise reader."""
    rows = ROWS + ([odd] if odd is not None else [])
    with open_store(str(tmp_path / "s.sqlite")) as store:
        store.put_many([(f"k{i}", {"kind": "sweep-point", "model": "m", "point": {"N": i}}, r)
                        for i, r in enumerate(rows)])
        store.put("other", {"kind": "other"}, {"q": 1})
        frame = store.frame("sweep-point")
        raw = store._query("SELECT key, kind, model, meta, result, version, created FROM results "
                           "WHERE kind = 'sweep-point'")
        by_rows = store._frame_by_rows(raw, store._decode_all([r[3] for r in raw]))
        columnwise = _arrow_columns([r[4] for r in raw])
    assert (columnwise is not None) == columns
    pd.testing.assert_frame_equal(_nulls_as_none(frame), _nulls_as_none(by_rows))
    assert len(frame) == len(rows) and list(frame["meta.point"])[0] == {"N": 0}
    assert frame["xs"].iloc[0] == [1, 2] and isinstance(frame["xs"].iloc[0], list)
    assert frame["tech"].iloc[2] == "2024-01-01" and frame["macs"].iloc[2] == 2**40


def test_keys_depend_on_every_part_and_the_version(monkeypatch):
    base = dict(model="itnet", params={"N": 2, "L": 1}, input_shape=(1, 3, 64, 96), dataset="camvid")
    k = result_key("sweep-point", **base)
    assert k == result_key("sweep-point", **dict(base, params={"L": 1, "N": 2}))  # order does not matter
    assert k == result_key("sweep-point", **dict(base, input_shape=[1, 3, 64, 96]))  # tuple == list
    assert k != result_key("sweep-point", **dict(base, params={"N": 3, "L": 1}))
    assert k != result_key("sweep-point", **dict(base, input_shape=(1, 3, 64, 64)))
    assert k != result_key("sweep-point", **dict(base, dataset="cityscapes"))
    assert k != result_key("analysis-summary", **base)
    monkeypatch.setattr(graphcost, "__version__", "99.0")
    assert k != result_key("sweep-point", **base)
    monkeypatch.undo()
    import graphcost.runtime.store as store_module

    assert k == result_key("sweep-point", **base)
    monkeypatch.setattr(store_module, "_FINGERPRINT", "edited model source")
    assert k != result_key("sweep-point", **base)  # edited cost code never serves stale results


def test_null_store_remembers_nothing():
    store = open_store(enabled=False)
    assert isinstance(store, NullStore) and not store.enabled
    store.put("k", {"kind": "x"}, {"a": 1})
    assert store.get("k") is None and store.get_many(["k"]) == {} and len(store) == 0


def test_unwritable_store_is_one_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="store path"):
        open_store(str(blocker / "results.sqlite")).get("k")


def test_default_path_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHCOST_STORE", str(tmp_path / "x.sqlite"))
    assert default_store_path() == str(tmp_path / "x.sqlite")
    monkeypatch.delenv("GRAPHCOST_STORE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_store_path() == os.path.join(str(tmp_path), "graphcost", "results.sqlite")


# --------------------------------------------------------------------------- faults (issue 10)
import sqlite3  # noqa: E402

from graphcost.runtime.store import APPLICATION_ID, cached_map  # noqa: E402


def _sqlite(path, *statements):
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


@pytest.mark.parametrize("statements, needle", [
    (["CREATE TABLE results (key TEXT, value TEXT)"], "another program"),                 # foreign, same table name
    (["CREATE TABLE notes (body TEXT)"], "another program"),                                # foreign, other tables
    (["PRAGMA application_id = 12345"], "another program"),                                # another app's marker
    ([f"PRAGMA application_id = {APPLICATION_ID}", "PRAGMA user_version = 99"], "schema version 99"),
])
def test_foreign_or_newer_files_are_refused_unchanged(tmp_path, statements, needle):
    path = str(tmp_path / "x.sqlite")
    _sqlite(path, *statements)
    before = open(path, "rb").read()
    with pytest.raises(UserError, match=needle):
        open_store(path).get_many([])
    assert open(path, "rb").read() == before  # never altered


def test_a_file_that_is_not_sqlite_is_refused(tmp_path):
    path = tmp_path / "x.sqlite"
    path.write_text("hello, I am a text file that happens to be here\n" * 10)
    with pytest.raises(UserError, match="not a SQLite file"):
        open_store(str(path)).get("k")


def test_a_store_written_before_the_marker_is_adopted(tmp_path):
    from graphcost.runtime.store import SCHEMA

    path = str(tmp_path / "old.sqlite")
    _sqlite(path, SCHEMA)
    with open_store(path) as store:
        store.put("k", {"kind": "x"}, {"a": 1})
        assert store.get("k") == {"a": 1}


def test_a_corrupt_row_is_a_miss_recomputed_and_reported(tmp_path):
    path = str(tmp_path / "s.sqlite")
    with open_store(path) as store:
        store.put("a", {"kind": "x"}, {"v": 1})
        store.put("b", {"kind": "x"}, {"v": 2})
    _sqlite(path, "UPDATE results SET result = '{not json' WHERE key = 'a'")
    computed = []

    def fn(item):
        computed.append(item)
        return {"v": item}

    with open_store(path) as store:
        results, fresh = cached_map(fn, [1, 2], ["a", "b"], store=store)
        assert results == [{"v": 1}, {"v": 2}] and computed == [1] and fresh == [0]
        assert store.corrupt == 1 and "1 unreadable rows" in store.notes()[0]
    with open_store(path) as store:  # the row was overwritten with the recomputed result
        assert store.get("a") == {"v": 1} and store.corrupt == 0


def test_a_locked_store_is_refused_in_one_line_and_a_late_lock_loses_no_result(tmp_path):
    path = str(tmp_path / "s.sqlite")
    with open_store(path) as store:
        store.put("a", {"kind": "x"}, {"v": 1})
    other = sqlite3.connect(path)
    other.execute("BEGIN EXCLUSIVE")  # another program holds the lock
    try:
        with pytest.raises(UserError, match="locked by another program"):
            open_store(path, timeout_s=0.2).get_many(["a"])
    finally:
        other.rollback()
    store = open_store(path, timeout_s=0.2)
    assert store.get_many(["a", "new"]) == {"a": {"v": 1}}  # a run reads its hits first, while the store is free
    other.execute("BEGIN EXCLUSIVE")  # then another program locks it, while results are being computed
    try:
        store.put("new", {"kind": "x"}, {"v": 5})  # no exception: the result is kept by the caller
        assert store.unsaved == 1 and "could not be saved" in store.notes()[0]
    finally:
        other.rollback()
        other.close()
        store.close()


def test_a_read_only_store_is_read_but_not_written(tmp_path, monkeypatch):
    path = str(tmp_path / "s.sqlite")
    with open_store(path) as store:
        store.put("a", {"kind": "x"}, {"v": 1})
    # Tests run as root, for whom file modes do not bind; os.access is what the store asks.
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode == os.W_OK else real_access(p, mode))
    with open_store(path) as store:
        assert store.get_many(["a", "b"]) == {"a": {"v": 1}} and not store.writable
        assert "read-only" in store.read_only_note()
        store.put("b", {"kind": "x"}, {"v": 2})
        assert store.unsaved == 1 and store.get("b") is None


def test_cli_says_a_store_is_read_only_before_computing(capsys, tmp_path, monkeypatch):
    from clirun import run

    path = str(tmp_path / "s.sqlite")
    open_store(path).get_many([])  # create it
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode == os.W_OK else real_access(p, mode))
    rc, out, err = run(capsys, "sweep", "itnet", "--grid", "N=1", "--param", "L=1", "--input", "32x48", "--workers",
                       "1", "--store", path)
    assert rc == 0, err
    assert err.splitlines()[0].startswith("note: the result store") and "read-only" in err.splitlines()[0]


def test_a_store_interrupted_while_it_is_made_is_made_again(tmp_path, monkeypatch):
    """A Ctrl-C between the statements that make a store (each of which would commit on its own) must not leave a
    file marked as graphcost's without its schema version: the next run would refuse it."""
    import graphcost.runtime.store as store_module

    real_connect = sqlite3.connect

    class Interrupted:  # a connection whose schema version write is cut short by a Ctrl-C
        def __init__(self, *args, **kwargs):
            self._conn = real_connect(*args, **kwargs)

        def execute(self, sql, *args):
            if "user_version =" in sql:
                raise KeyboardInterrupt
            return self._conn.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self._conn, name)

    path = str(tmp_path / "store.sqlite")
    monkeypatch.setattr(store_module.sqlite3, "connect", Interrupted)
    with pytest.raises(KeyboardInterrupt):
        open_store(path).get("x")
    monkeypatch.setattr(store_module.sqlite3, "connect", real_connect)
    with open_store(path) as store:
        store.put("x", {"kind": "analysis"}, {"a": 1})
        assert store.get("x") == {"a": 1}
    with real_connect(path) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
