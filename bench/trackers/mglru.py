"""``mglru``: working-set size from MGLRU aging of a memcg of our own (debugfs ``lru_gen``).

``start`` turns the MGLRU main switch and its page-table walk on when they are off
(``lru_gen/enabled`` through ``sysfs.Knobs``, restored on stop), creates a scratch memcg
(``bench.kernel.cgroup``: cgroup v2, or the v1 memory controller where that is what the
host has), moves this process into it and calls ``arena.repopulate()``, because a page's
memcg charge is set at allocation and never follows the process. The arena (and whatever
else the process allocates from then on) is now on this memcg's LRU.

Each aging (``+ memcg_id node_id max_gen_nr 1 1``: anon aged even without swap, force_scan
so every page table is walked) clears the Accessed bits of the memcg's mapped pages,
moves every page found accessed into the youngest generation, then opens a new, empty
one. So after aging at the start of an interval, the generations from that point on
hold exactly what was accessed (or newly allocated) since: ``collect`` ages again and
reports ``wss_pages`` = anon + file pages in every generation with ``seq`` >= the youngest
``seq`` after the previous aging, summed over nodes. ``collect``'s aging also arms the next
interval, so ``arm`` ages only the first time (or after a failed collect).

Aggregate only: MGLRU says how many pages, not which. The count covers the whole memcg,
so pages the interpreter allocates during the interval (small next to the arena) count
too; anon and file are kept apart in ``extra``. An aging the kernel refuses (the write's
errno) or that creates no generation is reported in ``status`` with ``wss_pages`` None.
Not for hugetlb (never on an LRU).
"""

from __future__ import annotations

import errno
import os

from bench.kernel import cgroup, mglru, mm_events, probe, sysfs
from bench.trackers._base import AGGREGATE, READS_AND_WRITES, Observation, RawPrimitive, Tracker

_WANTED = mglru.LRU_GEN_CORE | mglru.LRU_GEN_MM_WALK


class MglruTracker(Tracker):
    name = "mglru"
    mechanism = "mglru"
    granularity = AGGREGATE
    global_state = "MGLRU's lru_gen/enabled (when off) and a scratch memory cgroup"
    sees = READS_AND_WRITES
    backings = ("anon", "shmem", "thp")
    summary = "MGLRU aging of a scratch memcg via debugfs lru_gen: pages in the generations made since arm (WSS)"
    kernel_events = (mm_events.TRY_TO_INC_MAX_SEQ, mm_events.WALK_PMD_RANGE, mm_events.FOLIO_INC_GEN,
                     mm_events.LRU_GEN_LOOK_AROUND, mm_events.FOLIO_REFERENCED,
                     mm_events.PTEP_TEST_AND_CLEAR_YOUNG)

    kernel_probe = staticmethod(probe.probe_mglru)
    kconfig = ("LRU_GEN", "DEBUG_FS")
    raw_primitives = {
        "arm": "nothing after the first interval: collect's aging starts the next",
        "collect": RawPrimitive("lru_gen age of the memcg's nodes + read lru_gen", lambda t, scanner: t._raw_age),
    }
    interferences = {"tlb-flush": None}
    style = ("reddish_purple", "*")
    order = 30

    def __init__(self, **options):
        super().__init__(**options)
        self._knobs: sysfs.Knobs | None = None
        self._memcg: cgroup.ScratchMemcg | None = None
        self._memcg_id: int | None = None
        self._since: dict[int, int] = {}  # node -> first seq of the current interval
        self._armed = False
        self._enabled: int | None = None

    def start(self, arena) -> None:
        super().start(arena)
        try:
            mask = mglru.enabled()
            if mask is None:
                raise OSError(errno.ENOENT, "MGLRU is not available", mglru.LRU_GEN_ENABLED)
            self._knobs = sysfs.Knobs([mglru.LRU_GEN_ENABLED])
            if mask & _WANTED != _WANTED:
                self._knobs.write(mglru.LRU_GEN_ENABLED, f"{mask | _WANTED:#x}")
            self._enabled = mglru.enabled()
            self._memcg = cgroup.ScratchMemcg("hotbench-mglru")
            self._memcg.create()
            self._memcg.enter()
            arena.repopulate()
            self._memcg_id = self._find().id
        except BaseException:
            self.stop()
            raise

    def _find(self) -> mglru.LruGenMemcg:
        matches = [m for m in mglru.read_lru_gen() if m.path == self._memcg.path]
        if not matches:
            raise OSError(errno.ENOENT, f"memcg {self._memcg.path} not listed (is it on the memory hierarchy MGLRU "
                             f"reports?)", mglru.DEBUGFS_LRU_GEN)
        return matches[-1]

    def _age(self) -> tuple[dict[int, int] | None, str]:
        """Age every node of our memcg once; ({node: new max_seq}, "ok") or (None, why not)."""
        before = self._find()
        problems = []
        for node, gens in before.nodes.items():
            if not gens:
                continue
            try:
                mglru.age(self._memcg_id, node, max(g.seq for g in gens))
            except OSError as e:
                problems.append(f"node {node}: {os.strerror(e.errno) if e.errno else e}")
        after = self._find()
        new = {node: after.max_seq(node) for node, gens in after.nodes.items() if gens}
        stuck = [node for node, seq in new.items() if before.nodes.get(node) and seq <= before.max_seq(node)]
        if problems or stuck:
            why = "; ".join(problems) or f"no new generation on node(s) {', '.join(map(str, stuck))}"
            return None, f"aging refused: {why}"
        return new, "ok"

    def _raw_age(self) -> list[mglru.LruGenMemcg]:
        """Age each node of our memcg once and read lru_gen back, nothing more (the harness's primitive)."""
        for node, gens in self._find().nodes.items():
            if gens:
                mglru.age(self._memcg_id, node, max(g.seq for g in gens))
        return mglru.read_lru_gen()

    def arm(self) -> None:
        if not self._armed:
            new, status = self._age()
            if new is None:
                raise OSError(errno.EAGAIN, f"cannot arm: {status}", mglru.DEBUGFS_LRU_GEN)
            self._since, self._armed = new, True

    def collect(self) -> Observation:
        since = self._since
        new, status = self._age()
        memcg = self._find()
        anon = sum(g.anon for node, gens in memcg.nodes.items() for g in gens if g.seq >= since.get(node, 1 << 62))
        file = sum(g.file for node, gens in memcg.nodes.items() for g in gens if g.seq >= since.get(node, 1 << 62))
        extra = {"anon_pages": anon, "file_pages": file, "memcg": memcg.path, "memcg_id": memcg.id,
                 "lru_gen_enabled": self._enabled,
                 "generations": {str(n): [list(g) for g in gens] for n, gens in memcg.nodes.items()}}
        if new is None:
            self._armed = False  # re-age at the next arm
            return Observation(wss_pages=None, status=status, extra=extra)
        self._since = new
        return Observation(wss_pages=anon + file, extra=extra)

    def stop(self) -> None:
        errors = []
        if self._memcg is not None:
            try:
                self._memcg.close()
                self._memcg = None
            except OSError as e:
                errors.append(e)
        if self._knobs is not None:
            try:
                self._knobs.restore()
                self._knobs = None
            except OSError as e:
                errors.append(e)
        self._armed = False
        self._since = {}
        super().stop()
        if errors:
            raise errors[0]


TRACKERS = [MglruTracker]
