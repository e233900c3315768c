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
import io
import json
import os
import sqlite3
import time
from dataclasses import asdict
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import pandas as pd

import graphcost
from graphcost.errors import UserError, first_line

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
           "cached_map", "APPLICATION_ID", "SCHEMA_VERSION", "BUSY_TIMEOUT_S"]


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


#: ``PRAGMA application_id`` of a graphcost store ("gcst"): a SQLite file without it is someone else's.
APPLICATION_ID = 0x67637374
#: ``PRAGMA user_version``: the layout of the ``results`` table. A store of another version is refused.
SCHEMA_VERSION = 1
COLUMNS = ("key", "kind", "model", "meta", "result", "version", "created")
#: Seconds a store locked by another program is retried before it is refused.
BUSY_TIMEOUT_S = 30.0


def _fast_loads(text: str) -> Any:
    """``json.loads``, by orjson where it is installed (the ``store`` extra) and the text is within its range."""
    try:
        import orjson  # lazy on purpose: optional
    except ImportError:
        return json.loads(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # NaN, integers beyond 64 bits: what the standard parser reads
        return json.loads(text)


class ResultStore:
    """A SQLite file of ``key -> (meta, result)``; opened lazily, usable as a context manager.

    Opening checks that the file is a graphcost store of this schema (an empty or new file becomes
    one; anything else is refused, never altered) and whether it can be written: a read-only store
    is read but not written (``writable`` is false, nothing fails later). A row that cannot be read
    back is a miss (recomputed and overwritten) counted in ``corrupt``; a result that cannot be
    saved because another program holds the lock past ``timeout_s`` is counted in ``unsaved``.
    """

    def __init__(self, path: str, timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self.writable = True
        self.corrupt = 0
        self.unsaved = 0
        self._conn: Optional[sqlite3.Connection] = None

    @property
    def enabled(self) -> bool:
        return True

    def _refuse(self, why: str) -> UserError:
        return UserError(f"the result store {self.path!r} {why}; choose another store path or run without a store")

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self._conn = self._open()
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc):
                    raise self._refuse(f"is locked by another program ({first_line(exc)})") from None
                raise self._refuse(f"cannot be opened ({first_line(exc)})") from None
            except sqlite3.DatabaseError as exc:
                raise self._refuse(f"is not a SQLite file ({first_line(exc)})") from None
            except OSError as exc:
                raise self._refuse(f"cannot be created ({exc.strerror or first_line(exc)})") from None
        return self._conn

    def _open(self) -> sqlite3.Connection:
        directory = os.path.dirname(os.path.abspath(self.path))
        exists = os.path.exists(self.path)
        if not exists:
            os.makedirs(directory, exist_ok=True)
        # SQLite writes a journal beside the file: both must be writable to store anything.
        self.writable = not exists or (os.access(self.path, os.W_OK) and os.access(directory, os.W_OK))
        if self.writable:
            conn = sqlite3.connect(self.path, timeout=self.timeout_s)
        else:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=self.timeout_s)
        try:
            self._check_schema(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        """Accept our own store (or an empty file, which becomes one); refuse anything else unchanged."""
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        columns = tuple(row[1] for row in conn.execute("PRAGMA table_info(results)"))
        if app_id == APPLICATION_ID:
            if version != SCHEMA_VERSION:
                raise self._refuse(f"has schema version {version}, and this graphcost reads version {SCHEMA_VERSION}")
            return
        legacy = app_id == 0 and tables == {"results"} and columns == COLUMNS  # written before the marker existed
        if app_id != 0 or (tables and not legacy):
            raise self._refuse("belongs to another program (a SQLite file without graphcost's marker)")
        if not self.writable:
            if not tables:
                raise self._refuse("is read-only and empty")
            return
        # one transaction: a signal between the statements (each of which would commit on its own) left a store
        # marked as graphcost's with no schema version, refused at the next run; now it is all or nothing
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(SCHEMA)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    def _query(self, sql: str, args: Sequence[Any] = ()) -> List[tuple]:
        """Rows of a read; a store locked past the timeout is refused in one line."""
        try:
            return self._connect().execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            what = "is locked by another program" if "locked" in str(exc) else "cannot be read"
            raise self._refuse(f"{what} ({first_line(exc)}, after {self.timeout_s:g} s of retries)") from None

    def _decode(self, text: str) -> Optional[Dict[str, Any]]:
        try:
            value = json.loads(text)
        except (TypeError, ValueError):
            value = None
        if not isinstance(value, dict):
            self.corrupt += 1  # a miss: the caller recomputes it and put() overwrites the row
            return None
        return value

    def get(self, key: str) -> Optional[Dict[str, Any]]:
        rows = self._query("SELECT result FROM results WHERE key = ?", (key,))
        return self._decode(rows[0][0]) if rows else None

    def get_many(self, keys: Iterable[str]) -> Dict[str, Dict[str, Any]]:
        keys = list(dict.fromkeys(keys))
        found: Dict[str, Dict[str, Any]] = {}
        self._connect()
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for key, text in self._query(f"SELECT key, result FROM results WHERE key IN ({marks})", chunk):
                value = self._decode(text)
                if value is not None:
                    found[key] = value
        return found

    def put(self, key: str, meta: Mapping[str, Any], result: Mapping[str, Any]) -> None:
        """Store ``result`` under ``key``; a read-only or locked store counts it in ``unsaved`` instead."""
        self.put_many([(key, meta, result)])

    def put_many(self, entries: Sequence[Tuple[str, Mapping[str, Any], Mapping[str, Any]]]) -> None:
        """Store every ``(key, meta, result)`` in one transaction (all or none); read-only or locked: ``unsaved``."""
        if not entries:
            return
        conn = self._connect()
        if not self.writable:
            self.unsaved += len(entries)
            return
        now, version = time.time(), graphcost.__version__
        rows = [(key, str(meta.get("kind", "")), meta.get("model"), json.dumps(_canonical(meta)),
                 json.dumps(result, default=str), version, now) for key, meta, result in entries]
        try:
            conn.executemany("INSERT OR REPLACE INTO results (key, kind, model, meta, result, version, created) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            conn.commit()
        except sqlite3.OperationalError:  # locked past the timeout, disk full: keep the results, say so later
            conn.rollback()
            self.unsaved += len(entries)

    def read_only_note(self) -> Optional[str]:
        """The sentence to show before any work when the store is read-only, else None."""
        if self.writable:
            return None
        return f"the result store {self.path!r} is read-only: results are read from it but not saved"

    def notes(self) -> List[str]:
        """What the user should know about this store after a run (one sentence each)."""
        out = []
        if self.writable and self.unsaved:
            out.append(f"{self.unsaved} results could not be saved to the result store {self.path!r} (locked "
                       f"by another program or full); they were computed and used")
        if self.corrupt:
            out.append(f"{self.corrupt} unreadable rows of the result store {self.path!r} were recomputed")
        return out

    def __contains__(self, key: str) -> bool:
        return bool(self._query("SELECT 1 FROM results WHERE key = ?", (key,)))

    def __len__(self) -> int:
        return self._query("SELECT COUNT(*) FROM results")[0][0]

    def _decode_all(self, texts: Sequence[str]) -> List[Optional[Dict[str, Any]]]:
        """Every text decoded, in one JSON parse when all are sound (with orjson where installed: a 10,000-row
        store reads in a fraction of a second)."""
        try:
            values = _fast_loads("[" + ",".join(texts) + "]")
            if len(values) == len(texts) and all(isinstance(v, dict) for v in values):
                return values
        except (TypeError, ValueError):
            pass
        return [self._decode(text) for text in texts]  # one unsound row: find it, count it

    def frame(self, kind: Optional[str] = None):
        """The stored results as a DataFrame: key, kind, model, version, created, then meta and result columns.

        Result columns are parsed straight into columns by pyarrow's JSON reader where it is installed (the
        ``store`` extra) and reads them as pandas would (:func:`_arrow_columns`); else row by row.
        """
        query = "SELECT key, kind, model, meta, result, version, created FROM results"
        args: tuple = ()
        if kind is not None:
            query += " WHERE kind = ?"
            args = (kind,)
        raw = self._query(query, args)
        metas = self._decode_all([r[3] for r in raw])
        if all(meta is not None for meta in metas):
            columns = _arrow_columns([r[4] for r in raw])
            if columns is not None:
                return _assemble(raw, metas, columns)
        return self._frame_by_rows(raw, metas)

    def _frame_by_rows(self, raw: Sequence[tuple], metas: Sequence[Optional[Dict[str, Any]]]):
        """:meth:`frame` one row dict at a time: any JSON, unreadable rows skipped (and counted)."""
        results = self._decode_all([r[4] for r in raw])
        rows = []
        for (key, kind_, model, _, _, version, created), meta, result in zip(raw, metas, results):
            if meta is None or result is None:
                continue  # an unreadable row is no result
            row = {"key": key, "kind": kind_, "model": model, "version": version, "created": created}
            row.update({f"meta.{k}": v for k, v in meta.items()})
            row.update(result)
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


def _beyond_int64(column) -> bool:
    """Whether a float column (or list of floats) holds a magnitude of 2^63 or more: where an integer beyond
    int64 was, which Arrow reads as a float and Python keeps exact (a float that large is sent row by row too)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values = column
    while pa.types.is_list(values.type):
        values = pc.list_flatten(values)
    if not pa.types.is_floating(values.type):
        return False
    top = pc.max(pc.abs(values)).as_py()
    return top is not None and top >= 2.0 ** 63


def _plain_arrow_type(kind) -> bool:
    """Types pyarrow hands to pandas as pandas would build them from the row dicts (numbers, bools,
    strings, nulls, lists of those); a struct (missing keys filled in) or a timestamp (a date-like string)
    would not."""
    import pyarrow.types as pt

    if pt.is_list(kind):
        return _plain_arrow_type(kind.value_type)
    return pt.is_integer(kind) or pt.is_floating(kind) or pt.is_boolean(kind) or pt.is_string(kind) or \
        pt.is_null(kind)


def _arrow_columns(texts: Sequence[str]) -> Optional[Dict[str, Any]]:
    """Each result column (name -> values) read by pyarrow's JSON reader, in C++ with no dict per row.

    None where pyarrow is missing or cannot read the texts the way ``pd.DataFrame(rows)`` would: a row
    that is no object, a type that changes between rows (a number and a string), a nested object, an integer
    of 19 digits or more (Arrow would round it to a float, Python keeps it exact). The caller then reads row
    by row.
    """
    try:
        import pyarrow as pa  # lazy on purpose: optional (the ``store`` extra)
        import pyarrow.json as pa_json
    except ImportError:
        return None
    if not texts:
        return None
    try:
        table = pa_json.read_json(io.BytesIO("\n".join(texts).encode()))
    except (pa.ArrowException, ValueError):
        return None
    if table.num_rows != len(texts) or not all(_plain_arrow_type(f.type) for f in table.schema) or \
            any(_beyond_int64(column) for column in table.columns):
        return None
    columns: Dict[str, Any] = {}
    for name, column in zip(table.column_names, table.columns):
        # lists come back from Arrow as numpy arrays: give them back as the lists that were stored
        columns[name] = column.to_pylist() if pa.types.is_list(column.type) else column.to_pandas()
    return columns


def _assemble(raw: Sequence[tuple], metas: Sequence[Dict[str, Any]], columns: Mapping[str, Any]):
    """The frame of :meth:`ResultStore.frame` from its parts: base columns, ``meta.*``, then result columns
    (a result key named like an earlier column replaces its values in place, as ``dict.update`` does)."""
    base = {name: [r[i] for r in raw] for name, i in (("key", 0), ("kind", 1), ("model", 2), ("version", 5),
                                                      ("created", 6))}
    frame = pd.DataFrame(base)
    meta = pd.DataFrame(list(metas)).add_prefix("meta.")
    frame = pd.concat([frame, meta], axis=1) if len(meta.columns) else frame
    for name, values in columns.items():
        frame[name] = values
    return frame


class NullStore(ResultStore):
    """``--no-store``: remembers nothing."""

    def __init__(self) -> None:
        super().__init__(path="")

    def notes(self) -> List[str]:
        return []

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


def open_store(path: Optional[str] = None, enabled: bool = True, timeout_s: float = BUSY_TIMEOUT_S) -> ResultStore:
    """The store at ``path`` (default :func:`default_store_path`), or a :class:`NullStore` if disabled.

    ``timeout_s``: how long a store locked by another program is retried before it is refused.
    """
    if not enabled:
        return NullStore()
    return ResultStore(path or default_store_path(), timeout_s=timeout_s)


def cached_map(fn: Callable[[Any], Any], items: Sequence[Any], keys: Sequence[str], executor=None,
               store: Optional[ResultStore] = None, meta: Callable[[int], Mapping[str, Any]] = lambda i: {},
               keep: Callable[[Dict[str, Any]], bool] = lambda result: True,
               progress: Optional[Callable[[int, int], None]] = None,
               batch: Optional[Callable[[List[int]], List[Tuple[Any, List[int]]]]] = None
               ) -> Tuple[List[Dict[str, Any]], List[int]]:
    """``[fn(item) for item in items]`` in input order, with ``store`` in front and ``executor`` behind.

    Results stored under ``keys[i]`` are read back; the rest run on ``executor`` (inline by
    default), items sharing a key only once. Each computed result is put under its key with
    ``meta(i)`` as soon as it arrives, unless ``keep(result)`` is false. ``progress(done, total)``
    counts stored results too. ``batch(indices) -> [(work, indices), ...]`` groups the items to
    compute into work items that share work: ``fn(work)`` then returns one result per index of its
    group, and the group's results are stored in one transaction. Returns the results and the
    indices that were computed now.
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
    groups = batch(first) if batch is not None else [(items[i], [i]) for i in first]
    done, total = len(items) - len(todo), len(items)
    if progress is not None:
        progress(done, total)
    for j, result in executor.as_completed(fn, [work for work, _ in groups]):
        members = groups[j][1]
        answers = result if batch is not None else [result]
        store.put_many([(keys[i], meta(i), r) for i, r in zip(members, answers) if keep(r)])
        for i, answer in zip(members, answers):
            for k in same[keys[i]]:
                results[k] = answer
                done += 1
        if progress is not None:
            progress(done, total)
    return [r for r in results if r is not None], todo
