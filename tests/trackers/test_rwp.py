"""rwp (7.3 UFFDIO_RWPROTECT + PAGEMAP_SCAN PAGE_IS_ACCESSED): exact for reads and writes on
every pattern, anon and shmem; agrees with pagemap bit 57; the sync mode round trip works;
the kernel's refusals; nothing left behind. Live tests need a 7.3 kernel (``hotbench vm``);
the ioctl-sequence test is pure and runs anywhere.
"""

import ctypes
import errno
import os
import select
import threading

import numpy as np
import pytest
import workloads

from bench.arena import Arena, backing_unavailable
from bench.kernel import pagemap, uffd
from bench.trackers.rwp import RwpTracker
from tests.trackers import _leftovers
from tests.trackers._fake_ioctl import FakeKernel
from tests.trackers._lockstep import run

PAGE = 4096
live = pytest.mark.mechanism("rwp")


# ---- pure: the ioctls issued, against the documented 7.3 ABI

def test_exact_ioctl_sequence(monkeypatch):
    with Arena("1M", "anon") as a:
        kernel = FakeKernel(granted_features=0x7FFFF, range_ioctls=0x33C,
                            scan_regions=[(a.addr, a.addr + 2 * PAGE, pagemap.PAGE_IS_ACCESSED)]).install(monkeypatch)
        t = RwpTracker()
        try:
            t.start(a)
            t.arm()
            obs = t.collect()
            t.set_sync()
            t.resolve(a.addr + 5 * PAGE, PAGE)
            t.resolve(a.addr + 6 * PAGE, PAGE, wake=False)
            t.protect(a.addr, PAGE)
            t.set_async()
        finally:
            t.stop()
        names = [c.name for c in kernel.calls]
        assert names == ["UFFDIO_API", "UFFDIO_REGISTER", "UFFDIO_RWPROTECT", "PAGEMAP_SCAN", "UFFDIO_SET_MODE",
                         "UFFDIO_RWPROTECT", "UFFDIO_RWPROTECT", "UFFDIO_RWPROTECT", "UFFDIO_SET_MODE"]
        assert {(c.name, c.request, c.size) for c in kernel.calls} == {
            ("UFFDIO_API", 0xC018AA3F, 24), ("UFFDIO_REGISTER", 0xC020AA00, 32),
            ("UFFDIO_RWPROTECT", 0xC018AA09, 24), ("PAGEMAP_SCAN", 0xC0606610, 96),
            ("UFFDIO_SET_MODE", 0x4010AA0A, 16)}
        api, reg, arm, scan, sync, resolve, resolve_nowake, protect, async_ = (c.args for c in kernel.calls)
        assert api == {"api": 0xAA, "features": 0x60000, "ioctls": 0}
        assert reg == {"range.start": a.addr, "range.len": a.size, "mode": 0x8, "ioctls": 0}
        assert arm == {"range.start": a.addr, "range.len": a.size, "mode": 1}
        assert {k: scan[k] for k in ("size", "flags", "start", "end", "category_inverted", "category_mask",
                                     "category_anyof_mask", "return_mask")} == {
            "size": 96, "flags": 0, "start": a.addr, "end": a.end, "category_inverted": 0,
            "category_mask": 0x200, "category_anyof_mask": 0, "return_mask": 0x200}
        assert sync == {"enable": 0, "disable": 0x40000} and async_ == {"enable": 0x40000, "disable": 0}
        assert resolve == {"range.start": a.addr + 5 * PAGE, "range.len": PAGE, "mode": 0}
        assert resolve_nowake == {"range.start": a.addr + 6 * PAGE, "range.len": PAGE, "mode": 2}
        assert protect == {"range.start": a.addr, "range.len": PAGE, "mode": 1}
        assert obs.accessed.sum() == 2 and obs.accessed[:2].all()
        with pytest.raises(OSError):
            os.fstat(kernel.fds[0])


def test_refuses_a_range_without_rwprotect(monkeypatch):
    """Bits 17/18 granted but MODE_RWP offers no RWPROTECT: not the 7.3 ABI, refuse before arming."""
    from bench.trackers import TrackerUnavailable

    kernel = FakeKernel(granted_features=0x7FFFF, range_ioctls=0x1BC).install(monkeypatch)
    with Arena("1M", "anon") as a:
        t = RwpTracker()
        with pytest.raises(TrackerUnavailable, match="RWPROTECT"):
            t.start(a)
        t.stop()
    assert "UFFDIO_RWPROTECT" not in [c.name for c in kernel.calls]


# ---- live (7.3): exactness

@live
@pytest.mark.parametrize("backing", ["anon", "shmem"])
@pytest.mark.parametrize("pattern", workloads.names())
def test_exact_on_every_pattern(pattern, backing):
    df = run("rwp", pattern, backing, intervals=2, accesses=3_000)
    assert (df["fp"] == 0).all() and (df["fn"] == 0).all(), df[["interval", "tp", "fp", "fn"]]
    assert (df["truth_read"] > 0).all() and (df["truth_written"] > 0).all()


@live
@pytest.mark.parametrize("backing", ["anon", "shmem"])
@pytest.mark.parametrize("write_ratio", [0.0, 1.0])
def test_reads_only_and_writes_only(backing, write_ratio):
    df = run("rwp", "hotcold", backing, intervals=2, accesses=3_000, write_ratio=write_ratio)
    assert (df["fp"] == 0).all() and (df["fn"] == 0).all()


@live
def test_multithreaded():
    df = run("rwp", "uniform", "anon", intervals=2, accesses=6_000, threads=2, write_ratio=0.5)
    assert (df["fp"] == 0).all() and (df["fn"] == 0).all()


@live
@pytest.mark.parametrize("backing", ["thp", "hugetlb"])
def test_huge_backings_report_whole_huge_pages(backing):
    if backing_unavailable(backing, 16 << 20):
        pytest.skip(backing_unavailable(backing, 16 << 20))
    df = run("rwp", "hotcold", backing, intervals=2, accesses=3_000)
    assert (df["fn"] == 0).all()  # recall 1; precision in 2 MiB units


@live
def test_agrees_with_pagemap_bit_57():
    """Independent view: after RWPROTECT every present page is uffd-tracked (bit 57); an access
    clears the bit; PAGE_IS_ACCESSED must be exactly the present pages without it."""
    rng = np.random.default_rng(3)
    with Arena("4M", "anon") as a:
        t = RwpTracker()
        try:
            t.start(a)
            t.arm()
            entries = pagemap.read_entries(a.addr, a.npages)
            assert ((entries & np.uint64(pagemap.PM_UFFD_WP)) != 0).all()
            touched = np.sort(rng.choice(a.npages, 100, replace=False))
            for p in touched[::2]:
                ctypes.memset(a.addr + int(p) * PAGE, 1, 1)  # writes
            for p in touched[1::2]:
                ctypes.memmove(ctypes.create_string_buffer(1), a.addr + int(p) * PAGE, 1)  # reads
            hot = t.collect().accessed
            entries = pagemap.read_entries(a.addr, a.npages)
            untracked = (entries & np.uint64(pagemap.PM_PRESENT)) != 0
            untracked &= (entries & np.uint64(pagemap.PM_UFFD_WP)) == 0
            assert (hot == untracked).all() and set(np.flatnonzero(hot)) == set(touched)
        finally:
            t.stop()


# ---- live (7.3): the synchronous mode of the eviction workflow

def _reader(addr, done):
    """A read of one byte from a thread without the GIL (ctypes.memmove releases it)."""
    def work():
        ctypes.memmove(ctypes.create_string_buffer(1), addr, 1)
        done.set()
    th = threading.Thread(target=work, daemon=True)
    th.start()
    return th


def _wait_fault(t, timeout_ms=60_000):
    poller = select.poll()
    poller.register(t.fileno(), select.POLLIN)
    assert poller.poll(timeout_ms), "no fault message arrived"
    msgs = t.read_faults()
    assert len(msgs) == 1, msgs
    return msgs[0]


@live
@pytest.mark.parametrize("backing", ["anon", "shmem"])
def test_sync_fault_blocks_until_resolved(backing):
    with Arena("1M", backing) as a:
        a.view[:] = 7
        t = RwpTracker()
        try:
            t.start(a)
            t.arm()
            t.set_sync()
            page = a.addr + 3 * PAGE
            done = threading.Event()
            _reader(page + 100, done)
            msg = _wait_fault(t)
            assert msg["event"] == uffd.UFFD_EVENT_PAGEFAULT and int(msg["address"]) == page
            assert int(msg["flags"]) & uffd.UFFD_PAGEFAULT_FLAG_RWP
            assert not int(msg["flags"]) & uffd.UFFD_PAGEFAULT_FLAG_WRITE
            assert not done.wait(0.5), "the faulting thread should block in sync mode"
            t.resolve(page, PAGE)
            assert done.wait(60), "resolve did not wake the faulting thread"
            assert t.collect().accessed[3] and a.view[3 * PAGE + 100] == 7  # content intact
            t.set_async()
            done2 = threading.Event()
            _reader(a.addr + 5 * PAGE, done2)
            assert done2.wait(60), "async mode must not block"
            assert len(t.read_faults()) == 0
        finally:
            t.stop()


@live
def test_stop_releases_a_thread_blocked_in_sync_mode():
    with Arena("1M", "anon") as a:
        t = RwpTracker()
        try:
            t.start(a)
            t.arm()
            t.set_sync()
            done = threading.Event()
            _reader(a.addr, done)
            _wait_fault(t)
            assert not done.is_set()
        finally:
            t.stop()
        assert done.wait(60), "closing the userfaultfd must wake the blocked thread"


# ---- live (7.3): refusals

@live
def test_kernel_refusals():
    with Arena("1M", "anon") as a, Arena("1M", "anon") as other:
        t = RwpTracker()
        try:
            t.start(a)
            with pytest.raises(OSError) as e:
                t.protect(other.addr, PAGE)  # not RWP-registered
            assert e.value.errno == errno.ENOENT
            with pytest.raises(OSError) as e:
                t._uffd.set_mode(enable=uffd.UFFD_FEATURE_WP_ASYNC)  # not toggleable
            assert e.value.errno == errno.EINVAL
            with pytest.raises(OSError) as e:
                t._uffd.set_mode(enable=uffd.UFFD_FEATURE_RWP_ASYNC, disable=uffd.UFFD_FEATURE_RWP_ASYNC)
            assert e.value.errno == errno.EINVAL
            with uffd.Userfaultfd(uffd.UFFD_FEATURE_RWP) as u, pytest.raises(OSError) as e:
                u.register(other.addr, other.size, uffd.UFFDIO_REGISTER_MODE_RWP | uffd.UFFDIO_REGISTER_MODE_WP)
            assert e.value.errno == errno.EINVAL
        finally:
            t.stop()
    with pytest.raises(OSError) as e:  # RWP_ASYNC without RWP in the same handshake
        uffd.Userfaultfd(uffd.UFFD_FEATURE_RWP_ASYNC)
    assert e.value.errno == errno.EINVAL


# ---- live (7.3): nothing left behind

@live
@pytest.mark.parametrize("backing", ["anon", "shmem"])
def test_normal_stop_leaves_nothing_behind(monkeypatch, backing):
    watch = _leftovers.Watch(monkeypatch, RwpTracker)
    run("rwp", "uniform", backing, intervals=2, accesses=2_000)
    assert "ur" in watch.armed["flags"] and watch.armed["uffd_tracked"] > 0
    _leftovers.assert_restored(watch.before, watch.after)
    assert watch.writable


@live
@pytest.mark.parametrize("backing", ["anon", "shmem"])
def test_exception_inside_an_interval_leaves_nothing_behind(monkeypatch, backing):
    watch = _leftovers.Watch(monkeypatch, RwpTracker)
    _leftovers.failing_workloads(monkeypatch, at=1)
    with pytest.raises(RuntimeError, match="workload failed"):
        run("rwp", "uniform", backing, intervals=3, accesses=2_000)
    _leftovers.assert_restored(watch.before, watch.after)
    assert watch.writable


@live
@pytest.mark.parametrize("backing", ["anon", "shmem"])
def test_sigint_of_hotbench_run_leaves_nothing_behind(tmp_path, backing):
    result = _leftovers.sigint_run(tmp_path, "rwp", backing)
    assert result["returncode"] == 130, result["stderr"]
    assert "ur" in result["armed"]["flags"]
    _leftovers.assert_restored(result["before"], result["after"])
    assert result["writable"]
