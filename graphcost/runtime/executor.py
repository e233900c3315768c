"""Run independent work items in parallel: a local process pool, or Ray.

Sweeps, figure reports and Monte-Carlo trials are lists of independent, picklable work items
(plain data) processed by a top-level function. An :class:`Executor` runs them::

    from graphcost.runtime.executor import make_executor

    with make_executor("local") as ex:              # process pool sized to the cores
        results = ex.map(analyse_point, points)     # a list, in the order of ``points``

    with make_executor("ray", address=None) as ex:  # a local Ray started for the run
        for index, result in ex.as_completed(analyse_point, points):
            store.put(points[index], result)         # save each result as soon as it is done

Contract:

- ``map(fn, items, progress=None) -> list``: results **in input order**; ``progress(done, total)``
  is called after each finished item (in completion order) from the calling thread.
- ``as_completed(fn, items) -> iterator of (index, result)`` in completion order, so callers can
  persist results while the rest still runs (an interrupted sweep keeps what finished).
- ``fn`` must be a top-level (importable) function and every item picklable. An exception raised
  by ``fn`` is re-raised in the caller as itself (a :class:`graphcost.UserError` stays one).
- Context manager: ``__exit__`` closes the pool; the Ray executor calls ``ray.shutdown()`` only if
  it started Ray itself (an existing cluster or an already initialised Ray is left alone).
- ``workers=1`` runs inline in the calling process, no pool (deterministic and cheap in tests).
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import gc
import importlib
import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, Tuple

import torch
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.text import Text

from graphcost.errors import UserError, first_line
from graphcost.signals import signals_deferred

EXECUTORS = ("local", "ray")
RAY_HINT = "install the ray extra: pip install -e '.[ray]'"
ProgressFn = Callable[[int, int], None]

__all__ = ["EXECUTORS", "Executor", "InlineExecutor", "LocalExecutor", "RayExecutor", "ProgressBar", "make_executor",
           "cpu_count"]


def cpu_count() -> int:
    """Cores this process may use (respects CPU affinity / containers where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


class Executor:
    """Base class: subclasses implement :meth:`as_completed`; :meth:`map` orders the results."""

    kind = "base"

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def as_completed(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[Tuple[int, Any]]:
        raise NotImplementedError

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], progress: Optional[ProgressFn] = None) -> List[Any]:
        """``[fn(item) for item in items]``, computed in parallel, returned in input order."""
        items = list(items)
        results: List[Any] = [None] * len(items)
        done = 0
        for index, result in self.as_completed(fn, items):
            results[index] = result
            done += 1
            if progress is not None:
                progress(done, len(items))
        return results

    def preload(self, modules: Sequence[str]) -> None:
        """Name ``modules`` the work items will import. Here nothing to do: each item imports what it needs
        (a forking pool imports them before its workers start, :meth:`LocalExecutor.preload`)."""

    def close(self, abort: bool = False) -> None:
        pass

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(abort=exc_type is not None)

    def describe(self) -> str:
        return f"{self.kind} executor, {self.workers} worker{'s' if self.workers != 1 else ''}"


class InlineExecutor(Executor):
    """Runs every item in the calling process, one after the other."""

    kind = "inline"

    def __init__(self) -> None:
        super().__init__(1)

    def as_completed(self, fn, items):
        for index, item in enumerate(items):
            yield index, fn(item)


#: ``prctl`` option asking the kernel for a signal when the parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1
#: Seconds a stopped worker gets to end after SIGTERM before it is killed.
ABORT_GRACE_S = 2.0
#: Seconds between a worker's checks that its parent is alive, where ``prctl`` is not available.
WATCHDOG_S = 1.0


def _die_with_parent(parent_pid: int) -> None:
    """Make this worker die with ``parent_pid``: nothing we start outlives us.

    Linux: the kernel sends SIGKILL when the parent exits, however it exits (SIGKILL included).
    Elsewhere: a daemon thread polls the parent and exits the worker when it has gone.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    else:  # pragma: no cover - non-Linux
        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(WATCHDOG_S)
            os._exit(1)

        threading.Thread(target=watch, name="graphcost-parent-watchdog", daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


def _one_thread() -> None:
    # One thread per worker process: the pool provides the parallelism, and oversubscribed
    # intra-op threads only slow everything down.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)


def _init_pool_worker(parent_pid: int) -> None:
    """Initializer of a local pool worker: dies with its parent, leaves Ctrl-C to it, one thread, and its
    inherited heap out of the cycle collector's reach."""
    _die_with_parent(parent_pid)
    gc.freeze()  # the heap forked from the parent: see _run_and_freeze
    # Ctrl-C reaches the whole process group; the parent alone handles it (and stops the workers).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A forked worker inherits the parent's SIGTERM handler (which unwinds the CLI); the parent
    # stops its workers with SIGTERM, so here it must simply end the process.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _one_thread()


def _default_start_method() -> str:
    return "fork" if "fork" in multiprocessing.get_all_start_methods() and sys.platform != "darwin" else "spawn"


class LocalExecutor(Executor):
    """A :class:`concurrent.futures.ProcessPoolExecutor`; the pool is created lazily and reused.

    Workers start with ``fork`` where the OS has it (no re-import of torch per worker, which costs
    seconds), else ``spawn``; each worker runs torch single-threaded, which keeps fork safe with
    torch's OpenMP pool. ``GRAPHCOST_MP_START=spawn`` (or ``forkserver``) overrides it.
    """

    kind = "local"

    def __init__(self, workers: Optional[int] = None, start_method: Optional[str] = None) -> None:
        super().__init__(workers or cpu_count())
        self.start_method = start_method or os.environ.get("GRAPHCOST_MP_START") or _default_start_method()
        if self.start_method not in multiprocessing.get_all_start_methods():
            raise UserError(f"process start method {self.start_method!r} is not available here; use one of "
                            f"{', '.join(multiprocessing.get_all_start_methods())}")
        self._pool: Optional[cf.ProcessPoolExecutor] = None
        self._preload: List[str] = []

    def preload(self, modules: Sequence[str]) -> None:
        """Import ``modules`` in this process just before the workers start (with ``fork``), once, instead of
        once in every worker (a module a worker's first item would import, e.g. a large library: once here,
        shared by every forked worker).

        Parameters
        ----------
        modules : sequence of str
            Importable module names. Nothing is imported if the pool never starts (nothing to run, one item,
            or workers already started) or the workers do not fork (``spawn`` imports anew anyway).
        """
        self._preload.extend(modules)

    def _get_pool(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            if self.start_method == "fork":
                for name in self._preload:
                    importlib.import_module(name)
            self._pool = cf.ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context(self.start_method),
                initializer=_init_pool_worker, initargs=(os.getpid(),))
        return self._pool

    def as_completed(self, fn, items):
        items = list(items)
        if not items:
            return
        if len(items) == 1:  # not worth a worker start-up
            yield 0, fn(items[0])
            return
        futures = {}
        try:
            with signals_deferred():  # the first submit forks the workers
                pool = self._get_pool()
                for index, item in enumerate(items):
                    futures[pool.submit(_run_and_freeze, fn, item)] = index
            for future in cf.as_completed(futures):
                yield futures[future], future.result()
        finally:
            for future in futures:
                future.cancel()

    def close(self, abort: bool = False) -> None:
        """Shut the pool down; ``abort`` (an exception or a signal is unwinding) stops running workers now."""
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        # aborting: a repeated Ctrl-C / SIGTERM waits until the workers are stopped (at most ABORT_GRACE_S)
        with signals_deferred() if abort else contextlib.nullcontext():
            self._shut(pool, abort)

    @staticmethod
    def _shut(pool: cf.ProcessPoolExecutor, abort: bool) -> None:
        if abort:
            workers = list((getattr(pool, "_processes", None) or {}).values())
            for process in workers:  # first, so that shutting the pool down cannot wait on a busy worker
                process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            deadline = time.monotonic() + ABORT_GRACE_S
            for process in workers:
                process.join(timeout=max(0.0, deadline - time.monotonic()))
                if process.is_alive():
                    process.kill()
                    process.join(timeout=1)
        else:
            pool.shutdown(wait=True, cancel_futures=True)


def _import_ray():
    try:
        import ray  # noqa: F401  (lazy on purpose: an optional extra, and slow to import)
    except ImportError:
        raise UserError(f"the ray executor needs Ray; {RAY_HINT}") from None
    return ray


#: Times Ray re-runs a task whose worker or node died (an exception of the task itself is never retried).
RAY_TASK_RETRIES = 3


class RayExecutor(Executor):
    """Ray tasks (one CPU each) on an existing cluster (``address``) or a local Ray started for the run.

    ``address=None``: use Ray if this process already initialised it, else start a local Ray with
    ``workers`` CPUs (default: all cores) and shut it down on :meth:`close`. ``address="auto"`` or
    ``"ray://host:10001"`` connects to a running cluster, which is never shut down.
    """

    kind = "ray"

    def __init__(self, address: Optional[str] = None, workers: Optional[int] = None) -> None:
        ray = _import_ray()
        self._ray = ray
        self._started = False
        self._reaper = None
        if not ray.is_initialized():
            if address:
                _check_reachable(address)
            else:  # watching from before the start: a signal during ray.init orphans nothing
                self._reaper = _start_reaper()
            self._started = True
            try:
                if address:
                    ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
                else:
                    _start_local_ray(ray, workers or cpu_count())
            except (ConnectionError, RuntimeError, ValueError) as exc:
                self.close(abort=True)
                where = f"the Ray cluster at {address!r}" if address else "a local Ray"
                raise UserError(f"cannot start or connect to {where}: {first_line(exc)}") from None
            except BaseException:  # Ctrl-C / SIGTERM during start-up: stop what has started
                self.close(abort=True)
                raise
        self._restore_stdout = _ray_messages_to_stderr(ray)
        try:
            cpus = int(ray.cluster_resources().get("CPU", 1))
        except Exception:  # pragma: no cover - resources unavailable on some clients
            cpus = workers or 1
        super().__init__(max(1, cpus))
        self._remote_cache = {}

    def _remote(self, fn):
        remote = self._remote_cache.get(fn)
        if remote is None:
            remote = self._ray.remote(num_cpus=1, max_retries=RAY_TASK_RETRIES)(_call_in_worker)
            self._remote_cache[fn] = remote
        return remote

    def as_completed(self, fn, items):
        ray = self._ray
        items = list(items)
        if not items:
            return
        remote = self._remote(fn)
        refs = [remote.remote(fn, item) for item in items]
        index_of = {ref: i for i, ref in enumerate(refs)}
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    yield index_of[ref], self._get(ref)
        finally:
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # pragma: no cover - best effort
                    pass

    def _get(self, ref):
        try:
            return self._ray.get(ref)
        except self._ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, BaseException):
                raise cause from None
            raise

    def close(self, abort: bool = False) -> None:
        reaper, self._reaper = getattr(self, "_reaper", None), None
        restore, self._restore_stdout = getattr(self, "_restore_stdout", None), None
        if restore is not None:
            restore()
        try:
            if self._started and self._ray.is_initialized():
                self._ray.shutdown()
        finally:
            self._started = False
            if reaper is not None:  # Ray is down; after an aborted start-up the watcher kills what it started
                reaper.send_signal(signal.SIGUSR1 if abort else signal.SIGTERM)
                try:
                    reaper.wait(timeout=5)
                except subprocess.TimeoutExpired:  # pragma: no cover - a stuck watcher
                    reaper.kill()

    def describe(self) -> str:
        return f"ray executor, {self.workers} CPU{'s' if self.workers != 1 else ''}"


def _ray_messages_to_stderr(ray) -> Optional[Callable[[], None]]:
    """Send the messages Ray's driver thread prints about the cluster ("Raylet is terminated" when a node dies)
    to stderr, not stdout, where they would corrupt ``--format json``; returns the undo, or None.

    Ray prints them with ``print_to_stdstream(..., is_err=False)`` from a thread of its own; its module
    function is looked up at each call, so wrapping it is enough (private API: left alone if it moved).
    """
    module = getattr(getattr(ray, "_private", None), "worker", None)
    original = getattr(module, "print_to_stdstream", None)
    if original is None:  # pragma: no cover - another Ray version
        return None

    def to_stderr(data, ignore_prefix):
        return original({**data, "is_err": True}, ignore_prefix)

    module.print_to_stdstream = to_stderr

    def restore() -> None:
        if module.print_to_stdstream is to_stderr:
            module.print_to_stdstream = original

    return restore


#: Ray's own switch for a local-only node (what it uses on macOS and Windows): the node address is
#: 127.0.0.1 and every Ray server (GCS, raylet, object manager, agents, workers) binds to it.
RAY_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def _start_local_ray(ray, cpus: int) -> None:
    """``ray.init`` of a local Ray that listens on loopback only (no dashboard)."""
    constants = ray._private.ray_constants  # read at call time by ray's services, so setting it here counts
    saved_env, saved_flag = os.environ.get(RAY_LOOPBACK_ENV), constants.ENABLE_RAY_CLUSTER
    os.environ[RAY_LOOPBACK_ENV] = "0"  # inherited by the Ray processes started now
    constants.ENABLE_RAY_CLUSTER = False
    try:
        # address="local": always a new instance, never a cluster an earlier `ray start` left its file for
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level=logging.ERROR,
                 log_to_driver=False)
    finally:  # a later ray.init(address=...) in this process reaches clusters as usual
        constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(RAY_LOOPBACK_ENV, None)
        else:
            os.environ[RAY_LOOPBACK_ENV] = saved_env


_REAPER = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append("quit"))   # Ray shut down: nothing to kill
signal.signal(signal.SIGUSR1, lambda *a: stop.append("kill"))   # start-up aborted: kill what it started
parent, me, seen, before = int(sys.argv[1]), os.getpid(), {}, None

def stat(pid):
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return int(fields[1]), fields[19]  # ppid, start time

def watch():
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(stat(entry)[0], []).append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = {}, [parent]
    while frontier:
        for child in children.get(frontier.pop(), ()):
            if child != me:
                try:
                    found[child] = stat(child)[1]
                except (OSError, IndexError):
                    continue
                frontier.append(child)
    return found

before = set(watch())  # the parent's other children are not Ray's
while os.getppid() == parent and not stop:
    for pid, start in watch().items():
        if pid not in before:
            seen.setdefault(pid, start)
    time.sleep(0.2)
if stop and stop[0] == "quit":
    sys.exit(0)
for pid, start in seen.items():
    try:
        if stat(pid)[1] == start:  # else the pid belongs to another process by now
            os.kill(pid, signal.SIGKILL)
    except (OSError, IndexError):
        pass
"""


def _start_reaper() -> Optional[subprocess.Popen]:
    """A tiny watcher that SIGKILLs the processes the local Ray started if this process dies without shutting Ray down.

    It records, every 0.2 s from before ``ray.init`` (so a signal during Ray's start-up orphans
    nothing), the descendants of this process that were not there when it started, and kills those
    still alive when its parent dies (it is re-parented) or, on SIGUSR1, at once (an aborted start-up);
    SIGTERM (Ray was shut down) ends it quietly. Ray's GCS and raylet die with their driver, but its
    agents poll for seconds or outlive it. Linux only.
    """
    if not os.path.isdir("/proc"):  # pragma: no cover - non-Linux
        return None
    return subprocess.Popen([sys.executable, "-c", _REAPER, str(os.getpid())], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on an explicit ``host:port`` (or ``ray://host:port``) nobody listens on.

    Ray itself keeps retrying an unreachable GCS for minutes; ``auto`` and other forms are left to Ray.
    """
    target = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(f"cannot reach the Ray cluster at {address!r} ({reason}); check the address or start "
                        f"the cluster with 'ray start --head'") from None


def _run_and_freeze(fn, item):
    """``fn(item)`` in a pool worker, then its garbage collected and what survives frozen.

    A worker's heap is mostly long-lived (torch, the modules imported on first use, caches) and every full
    collection a work item set off scanned all of it: a quarter of a sweep's CPU time. Frozen, the cycle
    collector only ever scans what the current item made (memory is still freed by reference counts)."""
    try:
        return fn(item)
    finally:
        gc.collect()
        gc.freeze()


def _call_in_worker(fn, item):
    _one_thread()
    return fn(item)


def make_executor(kind: str = "local", address: Optional[str] = None, workers: Optional[int] = None) -> Executor:
    """An executor by name: ``"local"`` (process pool; ``workers=1`` runs inline) or ``"ray"``.

    ``address`` is for Ray only (an existing cluster; ``None`` starts a local one).
    """
    if workers is not None and workers < 1:
        raise UserError(f"workers must be at least 1, got {workers}")
    if kind == "local":
        if address:
            raise UserError("a cluster address is for the ray executor only")
        if (workers or cpu_count()) == 1:
            return InlineExecutor()
        return LocalExecutor(workers)
    if kind == "inline":
        return InlineExecutor()
    if kind == "ray":
        return RayExecutor(address=address, workers=workers)
    raise UserError(f"unknown executor {kind!r}; use one of: {', '.join(EXECUTORS)}")


class RateColumn(ProgressColumn):
    """Items per second since the start (``12.3 points/s``)."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:,.1f} {self.unit}/s")


class ProgressBar:
    """A progress bar with the rate (``unit``/s) and ETA on stderr (rich), used as the ``progress`` callback of ``map``.

    ``enabled=None``: only when stderr is a terminal, so pipes and tests stay clean. ``total=None``: the count is
    not known yet (the bar waits for the first ``progress(done, total)`` to learn it); ``total=0``: no bar.
    """

    def __init__(self, description: str, total: Optional[int], enabled: Optional[bool] = None,
                 unit: str = "items") -> None:
        self.description = description
        self.unit = unit
        self.total = total
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._progress = None
        self._task = None

    def __enter__(self) -> "ProgressBar":
        if self.enabled and self.total != 0:
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      RateColumn(self.unit), TimeElapsedColumn(), TextColumn("ETA"),
                                      TimeRemainingColumn(),
                                      console=Console(stderr=True), transient=True)
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total)
        return self

    def __call__(self, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=total)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
