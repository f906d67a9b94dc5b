"""``damon-vaddr`` and ``damon-paddr``: DAMON region monitoring with a kdamond of our own.

``start`` creates a kdamond through ``damon_sysfs.OwnedKdamond`` — only when no kdamond
exists at all: any existing one is someone else's and DAMON is then "in use" (never
stopped or reused) — with one context, one target and a ``stat`` scheme whose access
pattern takes every region, then turns it on.

- ``damon-vaddr``: target = this process. With ``fvaddr`` in ``avail_operations`` (fixed
  virtual ranges) the one region is the arena; otherwise plain ``vaddr`` builds its own
  regions from the whole address space (three chunks around the two largest gaps,
  refreshed every ``update_us``) and only the part inside the arena is reported.
  Option ``operations`` forces ``vaddr`` or ``fvaddr``.
- ``damon-paddr``: regions = the arena's physical ranges, from one bulk pagemap read,
  consecutive PFNs merged. More ranges than ``max_nr_regions`` are joined across the
  smallest gaps (pages between them are not ours: ``extra["foreign_pages"]``). Answers
  are mapped back to arena pages through the PFN map taken at ``arm``; a page whose PFN
  changed by ``collect`` is left out (``extra["pfn_changed"]``), and the next ``arm``
  commits the new ranges (``state commit``).

Options (defaults = DAMON's): ``sample_us`` 5000, ``aggr_us`` 100000, ``update_us``
60000000, ``min_nr_regions`` 10, ``max_nr_regions`` 1000, ``align`` True.

Timing. DAMON counts accesses per aggregation interval and starts over at the next, so
an interval of the lockstep runner is answered by one aggregation: ``collect`` writes
``update_schemes_tried_regions``, which returns once the scheme has been applied at the
end of the aggregation in progress (so ``collect`` waits up to ``aggr_us``: a fresh
aggregation, never one recorded before the interval), then reads ``tried_regions``. With
``align`` (default), ``arm`` first waits for an aggregation boundary
(``update_schemes_tried_bytes``, or ``..._regions`` where that is missing) so the
workload starts with a fresh aggregation: a workload shorter than ``aggr_us`` then falls
entirely into the aggregation ``collect`` reports. Accesses earlier than one
``aggr_us`` before ``collect`` are forgotten by DAMON: keep the workload's interval
shorter than ``aggr_us`` (or raise ``aggr_us``) to score whole intervals. ``arm`` and
``collect`` wall time therefore include up to one ``aggr_us`` of waiting each.

Answer: ``Observation(regions=...)`` in base pages relative to the arena, with each
region's ``nr_accesses`` (sampling intervals of that aggregation in which the region's
one sampled page was found accessed, 0..aggr_us/sample_us); the scorer counts a page as
accessed when its region's count is > 0. ``extra`` keeps the region count, the summed
counts and the largest age for the analysis. Newer kernels report a moving sum
(``nr_accesses_bp / 10000``) that equals the aggregation's count at its end, when the
scheme runs.
"""

from __future__ import annotations

import errno
import os

import numpy as np

from bench.kernel import damon_sysfs, mm_events, pagemap, probe
from bench.trackers._base import READS_AND_WRITES, REGION, Observation, RawPrimitive, Tracker, region_dtype

PAGE_SHIFT = pagemap.PAGE_SIZE.bit_length() - 1
DEFAULTS = {"sample_us": 5000, "aggr_us": 100_000, "update_us": 60_000_000, "min_nr_regions": 10,
            "max_nr_regions": 1000, "align": True}


def physical_ranges(pfns: np.ndarray, max_ranges: int) -> tuple[np.ndarray, int]:
    """([n, 2] of [first_pfn, end_pfn) runs covering *pfns*, at most *max_ranges*), foreign PFNs taken in."""
    uniq = np.unique(np.asarray(pfns, dtype=np.int64))
    uniq = uniq[uniq > 0]
    if not uniq.size:
        return np.empty((0, 2), np.int64), 0
    breaks = np.flatnonzero(np.diff(uniq) != 1)
    starts = np.r_[uniq[0], uniq[breaks + 1]]
    ends = np.r_[uniq[breaks] + 1, uniq[-1] + 1]
    if len(starts) <= max_ranges:
        return np.stack([starts, ends], axis=1), 0
    gaps = starts[1:] - ends[:-1]
    keep = np.sort(np.argsort(gaps, kind="stable")[len(gaps) - (max_ranges - 1):]) if max_ranges > 1 else []
    new_starts = np.r_[starts[0], starts[1:][keep]]
    new_ends = np.r_[ends[:-1][keep], ends[-1]]
    foreign = int((new_ends - new_starts).sum() - uniq.size)
    return np.stack([new_starts, new_ends], axis=1), foreign


def runs_of(labels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """region_dtype runs of consecutive pages with one label (>= 0), each with that label's value."""
    n = labels.size
    if not n:
        return np.zeros(0, dtype=region_dtype)
    change = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    ends = np.r_[change[1:], n]
    keep = labels[change] >= 0
    out = np.zeros(int(keep.sum()), dtype=region_dtype)
    out["start"], out["end"] = change[keep], ends[keep]
    out["nr_accesses"] = values[labels[change[keep]]]
    return out


def virtual_regions(tried: np.ndarray, base: int, npages: int) -> np.ndarray:
    """Tried regions (virtual byte ranges) clipped to the arena, in arena pages."""
    start = (tried["start"].astype(np.int64) - base) >> PAGE_SHIFT
    end = (tried["end"].astype(np.int64) - base + pagemap.PAGE_SIZE - 1) >> PAGE_SHIFT
    start, end = np.clip(start, 0, npages), np.clip(end, 0, npages)
    keep = end > start
    out = np.zeros(int(keep.sum()), dtype=region_dtype)
    out["start"], out["end"], out["nr_accesses"] = start[keep], end[keep], tried["nr_accesses"][keep]
    return out


def physical_regions(tried: np.ndarray, pfns: np.ndarray) -> tuple[np.ndarray, int]:
    """Tried regions (physical byte ranges) mapped onto arena pages through *pfns* (0 = unknown).

    Returns (region_dtype runs in arena pages, pages with a PFN outside every region)."""
    first = (tried["start"] >> np.uint64(PAGE_SHIFT)).astype(np.int64)
    last = ((tried["end"] + np.uint64(pagemap.PAGE_SIZE - 1)) >> np.uint64(PAGE_SHIFT)).astype(np.int64)
    pfns = np.asarray(pfns, dtype=np.int64)
    j = np.searchsorted(first, pfns, side="right") - 1
    inside = (pfns > 0) & (j >= 0)
    inside[inside] &= pfns[inside] < last[j[inside]]
    labels = np.where(inside, j, -1)
    return runs_of(labels, tried["nr_accesses"]), int(((pfns > 0) & ~inside).sum())


class _DamonTracker(Tracker):
    mechanism: str
    granularity = REGION
    global_state = "a kdamond"
    sees = READS_AND_WRITES
    backings = ("anon", "shmem", "thp", "hugetlb")
    operations_set: str  # 'vaddr' or 'paddr'
    raw_primitives = {
        "arm": "waits for DAMON's aggregation boundary; DAMON's cost is the kdamond's CPU (concurrent mode)",
        "collect": RawPrimitive("update_schemes_tried_regions + read tried_regions",
                                lambda t, scanner: t._raw_tried_regions),
    }
    interferences = {"tlb-flush": None}

    def __init__(self, **options):
        unknown = set(options) - set(DEFAULTS) - {"operations"}
        if unknown:
            raise TypeError(f"{self.name}: unknown option(s) {', '.join(sorted(unknown))}; "
                            f"known: {', '.join([*DEFAULTS, 'operations'])}")
        super().__init__(**{**DEFAULTS, **options})
        self._kdamond: damon_sysfs.OwnedKdamond | None = None
        self.operations: str | None = None
        self._extra: dict = {}

    def start(self, arena) -> None:
        super().start(arena)
        o = self.options
        try:
            self._kdamond = damon_sysfs.OwnedKdamond.create()
            self._kdamond.add_context()
            self.operations = self._choose_operations(self._kdamond.avail_operations())
            pid, regions = self._target()
            self._kdamond.configure(self.operations, sample_us=o["sample_us"], aggr_us=o["aggr_us"],
                                    update_us=o["update_us"], min_nr_regions=o["min_nr_regions"],
                                    max_nr_regions=o["max_nr_regions"], pid=pid, regions=regions)
            self._kdamond.add_stat_scheme()
            self._kdamond.command("on")
        except BaseException:
            self.stop()
            raise

    @property
    def kdamond_pid(self) -> int | None:
        """The kthread doing the work, whose CPU time concurrent mode charges to this tracker."""
        return self._kdamond.kdamond_pid if self._kdamond is not None else None

    def helper_threads(self) -> dict[str, int]:
        pid = self.kdamond_pid
        return {"kdamond": pid} if pid else {}

    def _choose_operations(self, avail: set[str]) -> str:
        raise NotImplementedError

    def _target(self) -> tuple[int | None, list[tuple[int, int]]]:
        raise NotImplementedError

    def _sync(self) -> None:
        """Return at an aggregation boundary (the end of the one in progress)."""
        try:
            self._kdamond.command("update_schemes_tried_bytes")
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            self._kdamond.command("update_schemes_tried_regions")

    def arm(self) -> None:
        if self._kdamond.state() != "on":
            raise OSError(errno.ESRCH, "our kdamond stopped (its target went away?)", f"{self._kdamond.base}/state")
        self._before_arm()
        if self.options["align"]:
            self._sync()

    def _before_arm(self) -> None:
        pass

    def collect(self) -> Observation:
        self._kdamond.command("update_schemes_tried_regions")
        tried = self._kdamond.tried_regions()
        regions, extra = self._to_arena(tried)
        extra.update(operations=self.operations, damon_regions=int(len(tried)),
                     nr_accesses_sum=int(tried["nr_accesses"].sum()) if len(tried) else 0,
                     age_max=int(tried["age"].max()) if len(tried) else 0,
                     max_nr_accesses=self.options["aggr_us"] // max(self.options["sample_us"], 1))
        status = "ok" if len(regions) else "no DAMON region covers the arena"
        return Observation(regions=regions, status=status, extra=extra)

    def _raw_tried_regions(self) -> np.ndarray:
        """collect's kernel work alone: the scheme's regions updated and read (the harness's primitive)."""
        self._kdamond.command("update_schemes_tried_regions")
        return self._kdamond.tried_regions()

    def _to_arena(self, tried: np.ndarray) -> tuple[np.ndarray, dict]:
        raise NotImplementedError

    def stop(self) -> None:
        # No atexit hook on purpose: the runner stops trackers in its finally and signal path,
        # and a hook firing late could act on state that is no longer what start() made.
        if self._kdamond is not None:
            self._kdamond.remove()  # refuses (and keeps self._kdamond for a retry) unless provably ours
            self._kdamond = None
        super().stop()


class DamonVaddrTracker(_DamonTracker):
    name = "damon-vaddr"
    mechanism = "damon-vaddr"
    operations_set = "vaddr"
    summary = "DAMON fvaddr/vaddr on this process, arena regions; stat scheme + tried_regions per aggregation"
    kernel_events = (mm_events.DAMON_AGGREGATED, mm_events.DAMON_VA_YOUNG, mm_events.DAMON_VA_MKOLD,
                     mm_events.PTEP_TEST_AND_CLEAR_YOUNG)

    kernel_probe = staticmethod(probe.probe_damon_vaddr)
    kconfig = ("DAMON_VADDR", "DAMON_SYSFS")
    style = ("yellow", "<")
    order = 60

    def _choose_operations(self, avail: set[str]) -> str:
        wanted = self.options.get("operations", "auto")
        if wanted == "auto":
            wanted = "fvaddr" if "fvaddr" in avail else "vaddr"
        if wanted not in ("vaddr", "fvaddr") or wanted not in avail:
            raise OSError(errno.EINVAL, f"operations {wanted!r} not available (avail_operations: "
                                        f"{' '.join(sorted(avail)) or 'none'})", f"{self._kdamond.ctx}/avail_operations")
        return wanted

    def _target(self):
        # fvaddr monitors exactly the given ranges; vaddr builds its own from the VMAs.
        return os.getpid(), ([(self.arena.addr, self.arena.end)] if self.operations == "fvaddr" else [])

    def _to_arena(self, tried):
        return virtual_regions(tried, self.arena.addr, self.arena.npages), {}


class DamonPaddrTracker(_DamonTracker):
    name = "damon-paddr"
    mechanism = "damon-paddr"
    operations_set = "paddr"
    backings = ("anon", "shmem", "thp")  # paddr checks LRU folios only; hugetlb is never on an LRU
    summary = "DAMON paddr over the arena's PFN ranges (bulk pagemap); stat scheme + tried_regions per aggregation"
    kernel_events = (mm_events.DAMON_AGGREGATED, mm_events.DAMON_FOLIO_YOUNG, mm_events.DAMON_FOLIO_MKOLD,
                     mm_events.RMAP_WALK, mm_events.PTEP_TEST_AND_CLEAR_YOUNG)

    kernel_probe = staticmethod(probe.probe_damon_paddr)
    kconfig = ("DAMON_PADDR", "DAMON_SYSFS")
    style = ("orange", ">")
    order = 61

    def __init__(self, **options):
        super().__init__(**options)
        self._pfns: np.ndarray | None = None
        self._ranges: np.ndarray | None = None
        self._foreign = 0

    def _choose_operations(self, avail):
        if "paddr" not in avail:
            raise OSError(errno.EINVAL, "'paddr' not in avail_operations", f"{self._kdamond.ctx}/avail_operations")
        return "paddr"

    def _read_pfns(self) -> np.ndarray:
        return pagemap.entry_pfns(pagemap.read_entries(self.arena.addr, self.arena.npages)).astype(np.int64)

    def _byte_ranges(self) -> list[tuple[int, int]]:
        return [(int(s) << PAGE_SHIFT, int(e) << PAGE_SHIFT) for s, e in self._ranges]

    def _target(self):
        self._pfns = self._read_pfns()
        if not (self._pfns > 0).any():
            raise OSError(errno.EPERM, "pagemap shows no PFN for the arena (needs CAP_SYS_ADMIN)", pagemap.pagemap_path())
        self._ranges, self._foreign = physical_ranges(self._pfns, self.options["max_nr_regions"])
        return None, self._byte_ranges()

    def _before_arm(self) -> None:
        pfns = self._read_pfns()
        if not np.array_equal(pfns, self._pfns):
            ranges, foreign = physical_ranges(pfns, self.options["max_nr_regions"])
            self._pfns = pfns
            if not np.array_equal(ranges, self._ranges):
                self._ranges, self._foreign = ranges, foreign
                self._kdamond.set_regions(self._byte_ranges())
                self._kdamond.command("commit")
                self._extra["commits"] = self._extra.get("commits", 0) + 1

    def _to_arena(self, tried):
        moved = self._read_pfns() != self._pfns  # their answer would be about another page: left out
        regions, outside = physical_regions(tried, np.where(moved, 0, self._pfns))
        return regions, {"physical_ranges": int(len(self._ranges)), "foreign_pages": self._foreign,
                         "outside_regions": outside, "pfn_changed": int(moved.sum()), **self._extra}


TRACKERS = [DamonVaddrTracker, DamonPaddrTracker]
