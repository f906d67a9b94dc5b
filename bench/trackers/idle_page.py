"""``idle-page``: idle page tracking through /sys/kernel/mm/page_idle/bitmap.

``arm`` reads the arena's PFNs from ``/proc/self/pagemap`` (one bulk read), maps each PFN
of a large folio to its head (``/proc/kpageflags`` COMPOUND_HEAD/TAIL; only the head
carries Idle), and marks the heads idle: their bits are grouped into the sorted unique
64-bit words that hold them and written with one ``pwrite`` per run of consecutive words.
Marking idle clears the Accessed bit of every PTE mapping the page (rmap walk).
``collect`` reads the same words back (the kernel re-checks each idle page through rmap
and clears Idle if it was accessed): a page is accessed when its head's bit is clear, so
all 512 base pages of a THP are reported by the head's one bit. numpy throughout, no
Python loop over pages.

Pages the kernel never reports idle are not guessed at: a page not on an LRU at ``arm``
(kpageflags LRU bit clear: still in a per-CPU LRU batch right after being faulted,
isolated for migration, the zero page, unevictable-but-not-LRU) is reported *accessed*
and counted in ``extra["not_lru"]``. PFNs are re-read at every ``arm`` (migration and
compaction move pages); a page whose PFN differs between ``arm`` and ``collect`` is
reported accessed and counted in ``extra["pfn_changed"]``.

Known limits, measured rather than corrected: an access through a TLB entry cached from
before the mark sets no Accessed bit and is missed (x86 does not flush on clearing it);
under MGLRU (``lru_gen/enabled`` & 1) the MGLRU aging walk and ``folio_mark_accessed``
lose accesses (false idle) — the lru_gen mask in force is recorded in
``extra["lru_gen_enabled"]`` of every interval (set it per run with ``hotbench run
--mglru on|off``). Not for hugetlb: hugetlb folios are not on an LRU and never read idle.
"""

from __future__ import annotations

import os
from functools import partial

import numpy as np

from bench.errors import HotbenchError
from bench.kernel import mglru, mm_events, page_idle, pagemap, probe, procfs
from bench.micro import kit
from bench.trackers._base import PAGE, READS_AND_WRITES, Observation, RawPrimitive, Tracker


class IdlePageTracker(Tracker):
    name = "idle-page"
    mechanism = "idle-page"
    granularity = PAGE
    sees = READS_AND_WRITES
    backings = ("anon", "shmem", "thp")
    summary = "page_idle bitmap: mark the arena's PFNs idle (THP by head), read back; not-LRU pages reported accessed"
    kernel_events = (mm_events.RMAP_WALK, mm_events.PAGE_IDLE_PTE_REFS, mm_events.PTEP_TEST_AND_CLEAR_YOUNG)
    profile_sets = {"rmap walk": mm_events.RMAP_WALK_FUNCTIONS}  # --kernel-profile: Peter Xu's question

    kernel_probe = staticmethod(probe.probe_idle_page)
    kconfig = ("IDLE_PAGE_TRACKING",)
    raw_primitives = {
        "arm": RawPrimitive("pagemap + kpageflags reads, page_idle bitmap pwrite", lambda t, scanner: t._raw_arm()),
        "collect": RawPrimitive("page_idle bitmap pread of the arena's words", lambda t, scanner: lambda:
                                page_idle.read_words(t._bitmap, t._words, t._runs)),
    }
    interferences = {"tlb-flush": None}
    # collect reads whole bitmap words and the kernel checks every PFN of each (page_idle_bitmap_read),
    # arm reads kpageflags per run of consecutive PFNs: both follow how the arena's pages are spread
    # (measured, built 7.3 icount guests, the same 8M hotcold cell in two boots: 93 words in 16 runs
    # vs 67 in 12, arm 8.06 vs 5.83 Minstr, collect 2.90 vs 2.70 Minstr)
    placement_extras = ("words", "runs")
    style = ("bluish_green", "P")
    order = 20

    @classmethod
    def micro_cases(cls) -> list:
        return _cases(cls.mechanism)

    def __init__(self, **options):
        super().__init__(**options)
        self._bitmap = self._pagemap = self._kpageflags = -1
        self._pfns: np.ndarray | None = None  # per arena page at arm (0: not present)
        self._words = self._runs = self._slot = self._shift = None
        self._unknown: np.ndarray | None = None  # present at arm but never reads idle
        self._arm_extra: dict = {}

    def start(self, arena) -> None:
        super().start(arena)
        try:
            self._bitmap = os.open(page_idle.PAGE_IDLE_BITMAP, os.O_RDWR | os.O_CLOEXEC)
            self._pagemap = pagemap.open_pagemap()
            self._kpageflags = os.open(page_idle.KPAGEFLAGS, os.O_RDONLY | os.O_CLOEXEC)
        except BaseException:
            self.stop()
            raise

    def _read_pfns(self) -> np.ndarray:
        entries = pagemap.read_entries(self.arena.addr, self.arena.npages, fd=self._pagemap)
        return pagemap.entry_pfns(entries)

    def _flags_of(self, pfns: np.ndarray) -> np.ndarray:
        return page_idle.read_kpageflags(self._kpageflags, pfns)

    def arm(self) -> None:
        pfns = self._read_pfns()
        present = pfns != 0
        own = pfns[present]
        flags = self._flags_of(own)
        heads, tails = page_idle.compound_heads(own, flags, self._flags_of)
        head_flags = flags if not tails else self._flags_of(heads)
        lru = (head_flags & np.uint64(1 << page_idle.KPF_LRU)) != 0
        words, values = page_idle.bitmap_words(heads[lru])
        runs = page_idle.word_runs(words)
        page_idle.write_words(self._bitmap, words, values, runs)
        # Where each present page's head bit lives, for collect.
        slot = np.searchsorted(words, heads >> np.uint64(6))
        self._slot = np.minimum(slot, max(len(words) - 1, 0))
        self._shift = heads & np.uint64(63)
        unknown = np.zeros(self.arena.npages, dtype=bool)
        unknown[np.flatnonzero(present)[~lru]] = True
        self._pfns, self._words, self._runs, self._unknown = pfns, words, runs, unknown
        self._arm_extra = {"present": int(own.size), "not_lru": int((~lru).sum()), "thp_tails": tails,
                           "words": int(len(words)), "runs": int(len(runs))}

    def _raw_arm(self):
        """What every arm must ask the kernel, for the PFNs the previous arm found: the arena's
        pagemap entries (PFNs move), those PFNs' kpageflags (which are on an LRU, which head a
        large folio), and the bitmap write (micro's arm/idle_bitmap_set). Only the tracker's
        numpy work between them is left out."""
        pfns = page_idle.sorted_unique(self._pfns[self._pfns != 0])
        pfn_runs = page_idle.word_runs(pfns)
        words, values = page_idle.bitmap_words(pfns)
        runs = page_idle.word_runs(words)

        def arm():
            pagemap.read_entries(self.arena.addr, self.arena.npages, fd=self._pagemap)
            page_idle.read_kpageflags_runs(self._kpageflags, pfns, pfn_runs)
            page_idle.write_words(self._bitmap, words, values, runs)
        return arm

    def collect(self) -> Observation:
        words = page_idle.read_words(self._bitmap, self._words, self._runs)
        present = self._pfns != 0
        idle = np.zeros(self.arena.npages, dtype=bool)
        if len(words):
            idle[present] = ((words[self._slot] >> self._shift) & np.uint64(1)) != 0
        changed = self._read_pfns() != self._pfns
        accessed = ~idle | self._unknown | changed
        accessed[~present & ~changed] = False  # absent then and now: never touched
        mask = mglru.enabled()
        extra = {**self._arm_extra, "pfn_changed": int(changed.sum()), "thp": procfs.thp_mode(),
                 "lru_gen_enabled": mask}
        status = "ok"
        if self._arm_extra.get("present", 0) == 0:
            status = "no page of the arena is present: nothing to mark idle"
        return Observation(accessed=accessed, status=status, extra=extra)

    def stop(self) -> None:
        for attr in ("_bitmap", "_pagemap", "_kpageflags"):
            fd = getattr(self, attr)
            if fd >= 0:
                os.close(fd)
                setattr(self, attr, -1)
        self._pfns = self._words = self._runs = self._slot = self._shift = self._unknown = None
        super().stop()


TRACKERS = [IdlePageTracker]


# ---------------------------------------------------------------- micro cases (hotbench micro)

class _IdleBitmap:
    """The page_idle bitmap words of one arena's PFNs, written and read as the tracker does
    (``page_idle.write_words`` / ``read_words``: one pwrite/preadv per run of consecutive words).
    PFNs come from pagemap (root: CAP_SYS_ADMIN); 4 KiB arenas only.
    """

    def __init__(self, arena):
        pfns = pagemap.entry_pfns(pagemap.read_entries(arena.addr, arena.npages))
        if not pfns.all():
            raise HotbenchError("pagemap gave no PFN for some arena pages: reading PFNs needs CAP_SYS_ADMIN")
        self.words, self.values = page_idle.bitmap_words(pfns)
        self.runs = page_idle.word_runs(self.words)
        self.fd = os.open(page_idle.PAGE_IDLE_BITMAP, os.O_RDWR | os.O_CLOEXEC)

    def set(self) -> None:
        page_idle.write_words(self.fd, self.words, self.values, self.runs)

    def read(self) -> None:
        page_idle.read_words(self.fd, self.words, self.runs)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _bitmap(stack, size):
    arena = kit.new_arena(stack, size, "anon")
    bitmap = _IdleBitmap(arena)
    stack.callback(bitmap.close)
    return arena, bitmap


def _arm_set(size, stack):
    arena, bitmap = _bitmap(stack, size)
    bitmap.set()
    pages = kit.pages(arena.npages, kit.ARM_FRACTION)

    def once():
        kit.touch(arena, pages)
        return kit.timed(bitmap.set)
    return once


def _scan_read(size, stack, fraction):
    arena, bitmap = _bitmap(stack, size)
    pages = kit.pages(arena.npages, fraction)

    def once():
        bitmap.set()
        kit.touch(arena, pages)
        return kit.timed(bitmap.read)
    return once


def _cases(mechanism: str) -> list[kit.Case]:
    return [kit.Case("arm/idle_bitmap_set/1pct/4k", "GiB", mechanism, "anon",
                     f"pwrite of the arena's PFN bits to {page_idle.PAGE_IDLE_BITMAP}", _arm_set),
            *(kit.Case(f"scan/idle_bitmap/read/{pct}/4k", "GiB", mechanism, "anon",
                       "pread of the arena's words of the page_idle bitmap; all marked idle, then P touched",
                       partial(_scan_read, fraction=fraction)) for pct, fraction in kit.PERCENTS.items())]
