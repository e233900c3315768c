"""The cycle collector paused around model builds (``graphcost.collector.collector_paused``): off inside,
restored after (exception or not, nested or overlapping blocks), and a build's modules are those of a build with
the collector running."""
import gc
import threading

import pytest

from graphcost.resolve import ModelSpec, build_for_shapes
from graphcost.collector import collector_paused

SPEC = ModelSpec(name="itnet", dataset="camvid", params={"N": 3, "L": 2, "K": 2, "f": 13}, shared=False)


def _layout(module):
    return ([(name, type(m).__name__) for name, m in module.named_modules()],
            [(name, tuple(p.shape), p.dtype, p.device.type) for name, p in module.named_parameters()])


def test_off_inside_and_restored_when_the_block_raises():
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with collector_paused():
            assert not gc.isenabled()
            raise RuntimeError("inside")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_overlapping_blocks_restore_once_the_last_closes():
    first, second = collector_paused(), collector_paused()
    first.__enter__()
    second.__enter__()  # as another thread's block would overlap
    first.__exit__(None, None, None)  # closed out of order: the other block still runs with the collector off
    assert not gc.isenabled()
    second.__exit__(None, None, None)
    assert gc.isenabled()
    threads = [threading.Thread(target=lambda: [build_for_shapes(SPEC) for _ in range(3)]) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert gc.isenabled()


def test_build_for_shapes_pauses_the_collector_and_builds_the_same_modules(monkeypatch):
    seen = []
    import graphcost.resolve as resolve

    original = resolve.build

    def build(spec):
        seen.append(gc.isenabled())
        return original(spec)

    monkeypatch.setattr(resolve, "build", build)
    paused = build_for_shapes(SPEC)
    monkeypatch.setattr(resolve, "collector_paused", lambda: __import__("contextlib").nullcontext())
    running = build_for_shapes(SPEC)
    assert seen == [False, True] and gc.isenabled()
    assert _layout(paused.module) == _layout(running.module)
