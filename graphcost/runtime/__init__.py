"""Shared plumbing: where work runs and where its results are kept.

* :mod:`.executor` — run independent, picklable work items on a local process pool or Ray.
* :mod:`.store` — the SQLite result store and :func:`~.store.cached_map` (store in front,
  executor behind), so a sweep or report never computes a result twice.

Nothing here knows about costs, models or hardware: any room may use it, it uses none of them.
"""
