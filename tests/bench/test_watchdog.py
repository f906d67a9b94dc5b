"""bench/watchdog.py: a cell that makes no progress is ended, recorded as an error with the
reason, its tracker stopped and its workload threads joined — and the run goes on.

Two ways a cell hangs, both made on purpose with test trackers: in Python (a collect that
blocks in a read nobody will answer: the watchdog's signal breaks the read) and in compiled
code (a workload stuck in a page fault of a userfaultfd nobody serves: only stopping the
tracker from the watchdog thread lets it through)."""

import os
import threading

import pandas as pd
import pytest

from bench import results, runner, trackers
from bench.kernel import libc, uffd
from bench.trackers._base import Observation, Tracker
from bench.watchdog import Watchdog

FAST = Watchdog(limit=1.0, grace=1.0)


class ReadHang(Tracker):
    """collect blocks in a read of a pipe nobody writes."""
    name = mechanism = "test-read-hang"

    def start(self, arena):
        super().start(arena)
        self.r, self.w = os.pipe()
        self.stopped = 0

    def arm(self):
        pass

    def collect(self):
        os.read(self.r, 1)
        return Observation(accessed=None)

    def stop(self):
        if self.arena is not None:
            os.close(self.r)
            os.close(self.w)
        self.stopped += 1
        super().stop()


class FaultHang(Tracker):
    """arm zaps the arena and registers it for MISSING faults with a userfaultfd nobody reads:
    the workload's first touch blocks in the kernel until stop() closes the userfaultfd."""
    name = mechanism = "test-fault-hang"

    def start(self, arena):
        super().start(arena)
        self.fd = None

    def arm(self):
        libc.madvise(self.arena.addr, self.arena.size, libc.MADV_DONTNEED)
        self.fd = uffd.Userfaultfd(0)
        self.fd.register(self.arena.addr, self.arena.size, uffd.UFFDIO_REGISTER_MODE_MISSING)

    def collect(self):
        return Observation(accessed=None)

    def stop(self):
        if getattr(self, "fd", None) is not None:
            self.fd.close()
            self.fd = None
        super().stop()


class Fine(Tracker):
    name = mechanism = "test-fine"

    def arm(self):
        pass

    def collect(self):
        import numpy as np
        return Observation(accessed=np.zeros(self.arena.npages, bool))


@pytest.fixture
def test_trackers(monkeypatch):
    real = trackers.get
    extra = {cls.name: cls for cls in (ReadHang, FaultHang, Fine)}
    monkeypatch.setattr(trackers, "get", lambda name: extra.get(name) or real(name))


def _plan(*names, threads=None):
    return runner.Plan([runner.Cell(n, "uniform", "anon", 1 << 20, 3, 0, 1, accesses=1000, threads=threads)
                        for n in names], {})


def test_a_cell_hung_in_python_is_ended_and_the_run_goes_on(tmp_path, test_trackers):
    rows = runner.run_plan(_plan("test-read-hang", "test-fine"), tmp_path, {"run_id": "r"}, watchdog=FAST)
    frame = pd.DataFrame(rows)
    hung = frame[frame["tracker"] == "test-read-hang"]
    assert len(hung) == 1 and hung["status"].iloc[0].startswith("error: no progress for 1 s")
    assert "ended by the watchdog" in hung["status"].iloc[0]
    assert (frame[frame["tracker"] == "test-fine"]["status"] == "ok").sum() == 3
    manifest = results.load_manifest(tmp_path)
    assert manifest["status"] == "complete" and manifest["progress"]["cells_done"] == 2


@pytest.mark.root
@pytest.mark.parametrize("threads", [1, 2])
def test_a_workload_stuck_in_a_fault_is_let_through_by_stopping_the_tracker(tmp_path, test_trackers, threads):
    """One thread: the main thread itself is stuck in compiled code; two: it waits in a join."""
    before = threading.active_count()
    rows = runner.run_plan(_plan("test-fault-hang", "test-fine", threads=threads), tmp_path, {"run_id": "r"},
                           watchdog=FAST)
    frame = pd.DataFrame(rows)
    hung = frame[frame["tracker"] == "test-fault-hang"]
    assert len(hung) == 1 and "ended by the watchdog" in hung["status"].iloc[0], hung["status"].tolist()
    assert (frame[frame["tracker"] == "test-fine"]["status"] == "ok").sum() == 3
    assert threading.active_count() == before, "a workload or watchdog thread outlived its cell"


def test_a_healthy_cell_is_left_alone(tmp_path, test_trackers):
    rows = runner.run_plan(_plan("test-fine"), tmp_path, {"run_id": "r"}, watchdog=Watchdog(limit=30.0))
    assert [r["status"] for r in rows] == ["ok"] * 3


def test_the_limit_follows_the_slowest_step_seen():
    dog = Watchdog(factor=10, floor=5)
    assert dog.limit_for(0.1) == 5 and dog.limit_for(2.0) == 20
    assert Watchdog(limit=3).limit_for(100) == 3


def _accesses_for(seconds: float) -> int:
    """Accesses that keep a 1 MiB uniform interval running for about *seconds* at this machine's
    speed now (measured, so a loaded machine only lengthens it)."""
    import time

    import numpy as np
    import workloads

    probe = 20_000_000
    workload = workloads.create("uniform", npages=256, page_size=4096, seed=1, accesses=probe, threads=1)
    arena = np.zeros(1 << 20, np.uint8)
    workload.run_interval(arena, 0)  # compiled or loaded from numba's cache
    t0 = time.perf_counter()
    workload.run_interval(arena, 1)
    return int(probe * seconds / max(time.perf_counter() - t0, 1e-3))


def test_a_workload_interval_that_does_not_return_is_named_and_ends_the_cell_as_an_error(tmp_path, test_trackers,
                                                                                       capfd):
    """The touch kernels take no stop request: the watchdog says so once (after its limit and
    two grace periods: 1.5 s), and the cell ends, as an error, when the interval returns (~6 s)."""
    plan = runner.Plan([runner.Cell("test-fine", "uniform", "anon", 1 << 20, 2, 0, 1, accesses=_accesses_for(6)),
                        runner.Cell("test-fine", "uniform", "anon", 1 << 20, 1, 0, 1, accesses=1000)], {})
    rows = runner.run_plan(plan, tmp_path, {"run_id": "r"}, watchdog=Watchdog(limit=0.5, grace=0.5))
    statuses = [r["status"] for r in rows]
    assert len(statuses) == 2 and "ended by the watchdog" in statuses[0] and statuses[1] == "ok", statuses
    err = capfd.readouterr().err
    assert err.count("the cell's workload has not returned (an interval still running in compiled code") == 1, err


def test_the_floor_follows_the_clock(monkeypatch):
    from bench import watchdog

    monkeypatch.delenv("HOTBENCH_CLOCK", raising=False)
    monkeypatch.setenv("HOTBENCH_ACCEL", "tcg")
    assert Watchdog().limit_for(1.0) == watchdog.EMULATED_FLOOR
    # under icount guest time skips every idle wait: a healthy cell outlasted the emulated floor
    monkeypatch.setenv("HOTBENCH_CLOCK", "instructions")
    assert Watchdog().limit_for(1.0) == watchdog.ICOUNT_FLOOR > watchdog.EMULATED_FLOOR
    assert Watchdog(floor=5).limit_for(0.1) == 5
