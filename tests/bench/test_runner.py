"""What the runner's timed regions contain: the tracker's phase, not the harness's own work."""

import gc

import pytest


def test_the_cyclic_gc_is_held_off_inside_a_timed_phase_only():
    from bench import runner

    seen = []
    value, wall_ns, cpu_ns = runner._timed(lambda: seen.append(gc.isenabled()) or "x")
    assert value == "x" and seen == [False] and gc.isenabled()
    assert wall_ns > 0 and cpu_ns >= 0
    gc.disable()  # a caller that had it off keeps it off
    try:
        runner._timed(lambda: None)
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(ZeroDivisionError):
        runner._timed(lambda: 1 / 0)
    assert gc.isenabled()


@pytest.mark.root
def test_compiled_helpers_load_before_the_tracker_starts(monkeypatch):
    """The first collect must not pay for loading regions_to_bitmap's compiled code (measured: 0.3-0.4 s
    of thread CPU in the first uffd-wp collect of a sweep, before this)."""
    from bench import runner, trackers
    from bench.kernel import pagemap

    order = []
    monkeypatch.setattr(pagemap, "warmup", lambda: order.append("warmup"))
    cls = trackers.get("mprotect")
    start = cls.start
    monkeypatch.setattr(cls, "start", lambda self, arena: (order.append("start"), start(self, arena))[1])
    rows = runner.run_cell(runner.Cell("mprotect", "uniform", "anon", 4 << 20, 1, 0, 1, accesses=100))
    assert rows[0]["status"] == "ok" and order == ["warmup", "start"]


@pytest.mark.root
def test_the_warmup_loads_the_version_a_real_scan_uses():
    """numba keeps one compiled version per array layout: warming with another layout than the
    scanner's answers left the first collect to load the right one (107 ms in a sweep)."""
    from bench.arena import Arena
    from bench.kernel import libc, pagemap
    from bench.kernel._ranges import fill_ranges

    pagemap.warmup()
    versions = len(fill_ranges.signatures)
    with Arena(8 << 20, "anon") as a, pagemap.Scanner() as scanner:
        for holes in (False, True):  # one region, then several
            if holes:  # drop every page, then fault every 8th back in
                libc.madvise(a.addr, a.size, libc.MADV_DONTNEED)
                a.view[::8 << 12] = 1
            regions = scanner.scan(a.addr, a.end, category_mask=pagemap.PAGE_IS_PRESENT,
                                   return_mask=pagemap.PAGE_IS_PRESENT)
            assert len(regions) == (a.npages // 8 if holes else 1)
            pagemap.regions_to_bitmap(regions, a.addr, a.npages)
    assert len(fill_ranges.signatures) == versions, fill_ranges.signatures
