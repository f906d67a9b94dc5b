"""uffd-wp must report exactly the written pages: precision = recall = 1 for writes, every pattern."""

import numpy as np
import pytest
import workloads

from bench.arena import Arena
from bench.kernel import pagemap, procfs
from bench.trackers.uffd_wp import UffdWpTracker
from tests.trackers._lockstep import run

pytestmark = pytest.mark.mechanism("uffd-wp")


@pytest.mark.parametrize("pattern", workloads.names())
def test_exact_for_writes_on_every_pattern(pattern):
    df = run("uffd-wp", pattern, intervals=3, accesses=20_000)
    assert (df["fp"] == 0).all() and (df["fn"] == 0).all(), df[["interval", "tp", "fp", "fn"]]
    assert (df["tp"] == df["truth_written"]).all() and df["tp"].sum() > 0


@pytest.mark.parametrize("backing", ["shmem", "thp"])
def test_other_backings(backing):
    from bench.arena import backing_unavailable

    if backing_unavailable(backing):
        pytest.skip(backing_unavailable(backing))
    df = run("uffd-wp", "uniform", backing, intervals=2, accesses=5_000)
    assert (df["fn"] == 0).all()  # THP reports whole 2 MiB pages: recall stays 1, precision may not
    if backing == "shmem":
        assert (df["fp"] == 0).all()


def test_multithreaded_writes_are_all_seen():
    df = run("uffd-wp", "uniform", intervals=2, accesses=40_000, threads=3, write_ratio=0.5)
    assert (df["fn"] == 0).all() and (df["fp"] == 0).all()


def _vma_flags(addr):
    """VmFlags of the smaps entry containing *addr* (uw = uffd-wp, ui = uffd-minor, um = uffd-missing)."""
    lines = (procfs.read_text("/proc/self/smaps") or "").splitlines()
    inside = False
    for line in lines:
        head = line.split()[0]
        if "-" in head and ":" not in head:
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= addr < hi
        elif inside and line.startswith("VmFlags:"):
            return set(line.split()[1:])
    raise AssertionError(f"no VMA at {addr:#x}")


def test_stop_after_failure_leaves_nothing_behind():
    with Arena("4M", "anon") as a:
        tracker = UffdWpTracker()
        tracker.start(a)
        tracker.arm()
        assert "uw" in _vma_flags(a.addr)
        with pytest.raises(RuntimeError):
            try:
                raise RuntimeError("interval failed")
            finally:
                tracker.stop()
        tracker.stop()  # twice is fine
        assert "uw" not in _vma_flags(a.addr)
        entries = pagemap.read_entries(a.addr, a.npages)
        assert not (entries & np.uint64(pagemap.PM_UFFD_WP)).any(), "write-protect markers left behind"
        a.view[:] = 1  # writable again, no fault handler needed
