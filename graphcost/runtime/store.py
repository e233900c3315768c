"""A local result store: SQLite, keyed by what a result depends on, so work is never done twice.

Sweeps and reports put every finished work item here as soon as it comes back from the
executor; an interrupted run resumes where it stopped, and repeated points are read back
instead of recomputed::

    from graphcost.runtime.store import open_store, result_key

    with open_store() as store:                       # ~/.cache/graphcost/results.sqlite
        key = result_key("sweep-point", model="itnet", params={"N": 2}, input_shape=(1, 3, 64, 96))
        if (hit := store.get(key)) is None:
            store.put(key, {"kind": "sweep-point", "model": "itnet"}, compute())

Keys are SHA-256 hashes of canonical JSON of the parts plus the graphcost version and a
fingerprint of the cost code (core, models, crossbar), so neither a new version nor an edited
model ever reads stale costs. Results are JSON-ready dicts. :meth:`ResultStore.frame`
returns the store as a pandas DataFrame. Only the calling process writes (workers return their
results to it), so no cross-process locking is needed beyond SQLite's own.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import asdict
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import pandas as pd

import graphcost
from graphcost.errors import UserError

from .executor import InlineExecutor

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    model TEXT,
    meta TEXT NOT NULL,
    result TEXT NOT NULL,
    version TEXT NOT NULL,
    created REAL NOT NULL
)
"""

__all__ = ["ResultStore", "NullStore", "open_store", "result_key", "default_store_path", "code_fingerprint",
           "cached_map"]


def default_store_path() -> str:
    """``$GRAPHCOST_STORE``, else ``$XDG_CACHE_HOME/graphcost/results.sqlite`` (``~/.cache`` by default)."""
    explicit = os.environ.get("GRAPHCOST_STORE")
    if explicit:
        return explicit
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "graphcost", "results.sqlite")


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "__dataclass_fields__"):
        return _canonical(asdict(value))
    return repr(value)


_FINGERPRINT: Optional[str] = None


def code_fingerprint() -> str:
    """SHA-256 of the source of everything that computes costs (graphcost core, passes, models, crossbar).

    Part of every key, so editing a model or a cost formula never serves stale results, even
    between releases; the figures' code (``reports``) is left out, as it computes nothing.
    """
    global _FINGERPRINT
    if _FINGERPRINT is None:
        digest = hashlib.sha256()
        roots = [os.path.dirname(os.path.abspath(graphcost.__file__))]
        for name in ("graphcost.models", "graphcost.crossbar"):
            try:
                module = __import__(name, fromlist=["__file__"])
            except Exception:  # a half-written sibling package must not break keys
                continue
            roots.append(os.path.dirname(os.path.abspath(module.__file__)))
        for root in sorted(set(roots)):
            for folder, dirs, files in sorted(os.walk(root)):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__")
                for name in sorted(f for f in files if f.endswith(".py")):
                    path = os.path.join(folder, name)
                    digest.update(os.path.relpath(path, root).encode())
                    with open(path, "rb") as handle:
                        digest.update(handle.read())
        _FINGERPRINT = digest.hexdigest()
    return _FINGERPRINT


def result_key(kind: str, **parts: Any) -> str:
    """Stable hash of ``kind``, the parts (model, params, input shape, dataset, spec, ...), the version
    and :func:`code_fingerprint`."""
    payload = json.dumps({"kind": kind, "version": graphcost.__version__, "code": code_fingerprint(),
                          **_canonical(parts)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


class ResultStore:
    """A SQLite file of ``key -> (meta, result)``; opened lazily, usable as a context manager."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: Optional[sqlite3.Connection] = None

    @property
    def enabled(self) -> bool:
        return True

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            directory = os.path.dirname(os.path.abspath(self.path))
            try:
                os.makedirs(directory, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=30)
                conn.execute(SCHEMA)
                conn.commit()
            except (OSError, sqlite3.Error) as exc:
                raise UserError(f"cannot open the result store {self.path!r} ({exc}); choose a writable "
                                f"store path or run without a store") from None
            self._conn = conn
        return self._conn

    def get(self, key: str) -> Optional[Dict[str, Any]]:
        row = self._connect().execute("SELECT result FROM results WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def get_many(self, keys: Iterable[str]) -> Dict[str, Dict[str, Any]]:
        keys = list(dict.fromkeys(keys))
        found: Dict[str, Dict[str, Any]] = {}
        conn = self._connect()
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for key, result in conn.execute(f"SELECT key, result FROM results WHERE key IN ({marks})", chunk):
                found[key] = json.loads(result)
        return found

    def put(self, key: str, meta: Mapping[str, Any], result: Mapping[str, Any]) -> None:
        conn = self._connect()
        try:
            conn.execute(
                "INSERT OR REPLACE INTO results (key, kind, model, meta, result, version, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, str(meta.get("kind", "")), meta.get("model"), json.dumps(_canonical(meta)),
                 json.dumps(result, default=str), graphcost.__version__, time.time()))
            conn.commit()
        except sqlite3.Error as exc:
            raise UserError(f"cannot write to the result store {self.path!r} ({exc}); choose a writable "
                            f"store path or run without a store") from None

    def __contains__(self, key: str) -> bool:
        return self._connect().execute("SELECT 1 FROM results WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        return self._connect().execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def frame(self, kind: Optional[str] = None):
        """The stored results as a DataFrame: key, kind, model, version, created, then meta and result columns."""
        query = "SELECT key, kind, model, meta, result, version, created FROM results"
        args: tuple = ()
        if kind is not None:
            query += " WHERE kind = ?"
            args = (kind,)
        raw = pd.read_sql_query(query, self._connect(), params=args)
        rows = []
        for record in raw.to_dict("records"):
            row = {k: record[k] for k in ("key", "kind", "model", "version", "created")}
            row.update({f"meta.{k}": v for k, v in json.loads(record["meta"]).items()})
            row.update(json.loads(record["result"]))
            rows.append(row)
        return pd.DataFrame(rows)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class NullStore(ResultStore):
    """``--no-store``: remembers nothing."""

    def __init__(self) -> None:
        super().__init__(path="")

    @property
    def enabled(self) -> bool:
        return False

    def get(self, key):
        return None

    def get_many(self, keys):
        return {}

    def put(self, key, meta, result):
        pass

    def __contains__(self, key):
        return False

    def __len__(self):
        return 0

    def frame(self, kind=None):
        return pd.DataFrame()


def open_store(path: Optional[str] = None, enabled: bool = True) -> ResultStore:
    """The store at ``path`` (default :func:`default_store_path`), or a :class:`NullStore` if disabled."""
    if not enabled:
        return NullStore()
    return ResultStore(path or default_store_path())


def cached_map(fn: Callable[[Any], Dict[str, Any]], items: Sequence[Any], keys: Sequence[str], executor=None,
               store: Optional[ResultStore] = None, meta: Callable[[int], Mapping[str, Any]] = lambda i: {},
               keep: Callable[[Dict[str, Any]], bool] = lambda result: True,
               progress: Optional[Callable[[int, int], None]] = None) -> Tuple[List[Dict[str, Any]], List[int]]:
    """``[fn(item) for item in items]`` in input order, with ``store`` in front and ``executor`` behind.

    Results stored under ``keys[i]`` are read back; the rest run on ``executor`` (inline by
    default), items sharing a key only once. Each computed result is put under its key with
    ``meta(i)`` as soon as it arrives, unless ``keep(result)`` is false. ``progress(done, total)``
    counts stored results too. Returns the results and the indices that were computed now.
    """
    executor = executor or InlineExecutor()
    store = store if store is not None else NullStore()
    found = store.get_many(keys)
    results: List[Optional[Dict[str, Any]]] = [found.get(k) for k in keys]
    todo = [i for i, r in enumerate(results) if r is None]
    same: Dict[str, List[int]] = {}
    for i in todo:
        same.setdefault(keys[i], []).append(i)
    first = [indices[0] for indices in same.values()]
    done, total = len(items) - len(todo), len(items)
    if progress is not None:
        progress(done, total)
    for j, result in executor.as_completed(fn, [items[i] for i in first]):
        i = first[j]
        if keep(result):
            store.put(keys[i], meta(i), result)
        for k in same[keys[i]]:
            results[k] = result
            done += 1
            if progress is not None:
                progress(done, total)
    return [r for r in results if r is not None], todo
