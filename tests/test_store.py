import os

import pytest

import graphcost
from graphcost import UserError
from graphcost.runtime.store import NullStore, ResultStore, default_store_path, open_store, result_key


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
    with pytest.raises(UserError, match="writable store path"):
        open_store(str(blocker / "results.sqlite")).get("k")


def test_default_path_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHCOST_STORE", str(tmp_path / "x.sqlite"))
    assert default_store_path() == str(tmp_path / "x.sqlite")
    monkeypatch.delenv("GRAPHCOST_STORE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_store_path() == os.path.join(str(tmp_path), "graphcost", "results.sqlite")
