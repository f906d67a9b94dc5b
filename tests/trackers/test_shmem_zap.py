"""shmem-zap: exact for writes; reads over-report through fault-around (measured); the MINOR variant is exact."""

import pytest

from bench.arena import Arena
from bench.trackers.shmem_zap import ShmemZapMinorTracker
from tests.trackers._lockstep import run
from tests.trackers.test_uffd_wp import _vma_flags


@pytest.mark.mechanism("shmem-zap")
def test_exact_for_writes():
    df = run("shmem-zap", "uniform", "shmem", accesses=5_000, write_ratio=1.0)
    assert (df["fp"] == 0).all() and (df["fn"] == 0).all()


@pytest.mark.mechanism("shmem-zap")
def test_reads_over_report_through_fault_around():
    df = run("shmem-zap", "uniform", "shmem", accesses=2_000, write_ratio=0.0)
    assert (df["fn"] == 0).all()
    pages_per_read_fault = (df["reported"] / df["truth_read"]).mean()
    print(f"shmem-zap: {pages_per_read_fault:.1f} pages reported per page read (fault-around)")
    assert pages_per_read_fault > 2, "fault-around should map neighbours of read faults"


@pytest.mark.mechanism("uffd-minor")
@pytest.mark.parametrize("write_ratio", [0.0, 0.3, 1.0])
def test_minor_variant_is_exact(write_ratio):
    df = run("shmem-zap-minor", "hotcold", "shmem", accesses=5_000, write_ratio=write_ratio)
    assert (df["fp"] == 0).all() and (df["fn"] == 0).all()


@pytest.mark.mechanism("uffd-minor")
def test_minor_stop_after_failure_unregisters():
    with Arena("4M", "shmem") as a:
        tracker = ShmemZapMinorTracker()
        tracker.start(a)
        tracker.arm()
        assert "ui" in _vma_flags(a.addr)
        tracker.stop()
        tracker.stop()
        assert "ui" not in _vma_flags(a.addr)
        a.view[:] = 1  # refaults from the page cache with nobody serving uffd: must not block
