"""soft-dirty (clear_refs 4 + PAGE_IS_SOFT_DIRTY / pagemap bit 55): exact for writes on every
pattern, anon and shmem, through either source; reads invisible; the documented pitfalls
(new VMAs read all dirty, the clear is process-wide) shown; nothing left behind that can be
put back. Needs CONFIG_MEM_SOFT_DIRTY (the 7.3 Debian kernel under ``hotbench vm``).
"""

import ctypes
import types

import numpy as np
import pytest
import workloads

from bench.arena import Arena, backing_unavailable
from bench.kernel import libc, pagemap, procfs
from bench.trackers.soft_dirty import SoftDirtyTracker
from tests.trackers import _leftovers
from tests.trackers._lockstep import run

pytestmark = pytest.mark.mechanism("soft-dirty")
PAGE = 4096
MAP_FIXED_NOREPLACE = 0x100000


@pytest.mark.parametrize("backing", ["anon", "shmem"])
@pytest.mark.parametrize("pattern", workloads.names())
def test_exact_for_writes_on_every_pattern(pattern, backing):
    df = run("soft-dirty", pattern, backing, intervals=2, accesses=3_000)
    assert (df["fp"] == 0).all() and (df["fn"] == 0).all(), df[["interval", "tp", "fp", "fn"]]
    assert (df["tp"] == df["truth_written"]).all() and df["tp"].sum() > 0


def test_thp_reports_whole_huge_pages():
    if backing_unavailable("thp"):
        pytest.skip(backing_unavailable("thp"))
    df = run("soft-dirty", "hotcold", "thp", intervals=2, accesses=3_000)
    assert (df["fn"] == 0).all()


def _touch(addr, pages, write):
    for p in pages:
        if write:
            ctypes.memset(addr + int(p) * PAGE, 1, 1)
        else:
            ctypes.memmove(ctypes.create_string_buffer(1), addr + int(p) * PAGE, 1)


@pytest.mark.parametrize("backing", ["anon", "shmem"])
@pytest.mark.parametrize("source", ["scan", "pagemap"])
def test_both_sources_exact_and_blind_to_reads(source, backing):
    rng = np.random.default_rng(5)
    with Arena("4M", backing) as a:
        t = SoftDirtyTracker(source=source)
        try:
            t.start(a)
            for _ in range(2):
                t.arm()
                written, read = np.split(rng.choice(a.npages, 200, replace=False), 2)
                _touch(a.addr, written, True)
                _touch(a.addr, read, False)
                obs = t.collect()
                assert obs.status == "ok" and obs.extra["source"] == source
                assert set(np.flatnonzero(obs.written)) == set(written.tolist())
        finally:
            t.stop()


def test_scan_and_bit_55_agree():
    with Arena("4M", "anon") as a:
        t = SoftDirtyTracker(source="scan")
        try:
            t.start(a)
            t.arm()
            _touch(a.addr, range(0, a.npages, 7), True)
            entries = pagemap.read_entries(a.addr, a.npages)
            assert (t.collect().written == ((entries & np.uint64(pagemap.PM_SOFT_DIRTY)) != 0)).all()
        finally:
            t.stop()


def test_pitfall_new_vma_reads_all_dirty_until_the_next_clear():
    """§7.3: a new VMA carries VM_SOFTDIRTY ('sd'): every page dirty before any write."""
    with Arena("1M", "anon") as a:
        procfs.clear_refs(procfs.CLEAR_REFS_SOFT_DIRTY)
        assert "sd" not in procfs.smaps_vma(a.addr)["VmFlags"]
        with Arena("1M", "anon") as fresh:
            assert "sd" in procfs.smaps_vma(fresh.addr)["VmFlags"]
            assert (pagemap.read_entries(fresh.addr, fresh.npages) & np.uint64(pagemap.PM_SOFT_DIRTY)).all()


def test_pitfall_arming_clears_every_other_mapping_of_the_process():
    """clear_refs 4 is process-wide: arming erases the soft-dirty state of unrelated memory."""
    with Arena("1M", "anon") as a, Arena("1M", "anon") as other:
        procfs.clear_refs(procfs.CLEAR_REFS_SOFT_DIRTY)
        _touch(other.addr, [0, 1, 2], True)  # someone else's dirty pages
        assert (pagemap.read_entries(other.addr, 3) & np.uint64(pagemap.PM_SOFT_DIRTY)).all()
        t = SoftDirtyTracker()
        try:
            t.start(a)
            t.arm()
            assert not (pagemap.read_entries(other.addr, 3) & np.uint64(pagemap.PM_SOFT_DIRTY)).any()
        finally:
            t.stop()


def _mapping_with_free_tail(size):
    prot = libc.PROT_READ | libc.PROT_WRITE
    flags = libc.MAP_PRIVATE | libc.MAP_ANONYMOUS
    addr = libc.mmap(2 * size, prot, flags)
    libc.munmap(addr + size, size)  # keep the address after it free
    ctypes.memset(addr, 1, size)
    return addr, prot, flags


def _map_tail(addr, size, prot, flags):
    if libc._mmap(addr + size, size, prot, flags | MAP_FIXED_NOREPLACE, -1, 0) != addr + size:
        pytest.skip("the address after the mapping was taken in between")


def test_new_neighbours_are_kept_out_of_the_arena_vma():
    """A new mapping next to the arena (a thread stack, since 6.7: MAP_STACK implies the arena's
    VM_NOHUGEPAGE) would merge and bring VM_SOFTDIRTY; the tracker's isolation prevents it."""
    size = 16 * PAGE
    addr, prot, flags = _mapping_with_free_tail(size)
    arena = types.SimpleNamespace(addr=addr, size=size, end=addr + size, npages=16, backing="anon")
    t = SoftDirtyTracker(source="scan")
    try:
        t.start(arena)
        t.arm()
        _map_tail(addr, size, prot, flags)
        _touch(addr, [3], True)
        assert procfs.smaps_vma(addr)["range"] == (addr, addr + size)
        obs = t.collect()
        assert obs.status == "ok" and list(np.flatnonzero(obs.written)) == [3]
    finally:
        t.stop()
        assert "dc" not in procfs.smaps_vma(addr)["VmFlags"]  # isolation undone
        libc.munmap(addr, 2 * size)


def test_vma_level_flag_is_reported():
    """If the arena's VMA merges with a new one after the clear, the whole VMA reads dirty: collect
    says so. (Forced here: the neighbour is given the arena's flags, isolation included.)"""
    size = 16 * PAGE
    addr, prot, flags = _mapping_with_free_tail(size)
    libc.madvise(addr, size, libc.MADV_DONTFORK)  # already isolated: the tracker leaves it so
    arena = types.SimpleNamespace(addr=addr, size=size, end=addr + size, npages=16, backing="anon")
    t = SoftDirtyTracker(source="scan")
    try:
        t.start(arena)
        t.arm()
        _touch(addr, [3], True)
        assert t.collect().status == "ok"
        t.arm()
        _map_tail(addr, size, prot, flags)
        libc.madvise(addr + size, size, libc.MADV_DONTFORK)  # same flags now: merges, brings 'sd'
        assert procfs.smaps_vma(addr)["range"] == (addr, addr + 2 * size)
        obs = t.collect()
        assert obs.written.all() and obs.status.startswith("vma-soft-dirty")
    finally:
        t.stop()
        assert "dc" in procfs.smaps_vma(addr)["VmFlags"]  # not ours to undo
        libc.munmap(addr, 2 * size)


def test_unknown_source_is_refused():
    with pytest.raises(ValueError, match="source"):
        SoftDirtyTracker(source="kpageflags")


# ---- nothing left behind (the bits clear_refs cleared cannot be restored: 'sd' is ignored)

@pytest.mark.parametrize("backing", ["anon", "shmem"])
def test_normal_stop_leaves_nothing_behind(monkeypatch, backing):
    watch = _leftovers.Watch(monkeypatch, SoftDirtyTracker)
    run("soft-dirty", "uniform", backing, intervals=2, accesses=2_000)
    assert "sd" not in watch.armed["flags"]
    _leftovers.assert_restored(watch.before, watch.after, ignore={"sd"})
    assert watch.writable


def test_exception_inside_an_interval_leaves_nothing_behind(monkeypatch):
    watch = _leftovers.Watch(monkeypatch, SoftDirtyTracker)
    _leftovers.failing_workloads(monkeypatch, at=1)
    with pytest.raises(RuntimeError, match="workload failed"):
        run("soft-dirty", "uniform", "anon", intervals=3, accesses=2_000)
    _leftovers.assert_restored(watch.before, watch.after, ignore={"sd"})
    assert watch.writable


def test_sigint_of_hotbench_run_leaves_nothing_behind(tmp_path):
    result = _leftovers.sigint_run(tmp_path, "soft-dirty", "anon")
    assert result["returncode"] == 130, result["stderr"]
    _leftovers.assert_restored(result["before"], result["after"], ignore={"sd"})
    assert result["writable"]
