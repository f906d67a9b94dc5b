"""Controlled interferences for lockstep runs (``hotbench run --interfere NAME[,NAME...]``).

An interference is something the kernel (or another program) may do to a tracker's evidence
in real life, done here on purpose, once per interval, at a fixed point of the lockstep, so
its effect on accuracy can be measured against the same run without it. The runner calls
``Interference.hook(when, arena)`` at two points of every interval, both outside the timed
``arm``/``collect`` regions and while no workload thread runs:

- ``after_arm``: right after ``tracker.arm``, before the workload touches the arena;
- ``after_touch``: after the workload's interval, before ``tracker.collect``.

Registry (``REGISTRY``, name -> class):

- ``none``: nothing (the baseline of a sweep).
- ``tlb-flush`` (after_arm): ``mprotect(PROT_READ)`` then ``mprotect(PROT_READ|PROT_WRITE)``
  over the whole arena. Taking write permission away changes every present PTE, so the
  kernel must flush the arena's TLB entries on every CPU that may cache them
  (``change_protection`` -> ``flush_tlb_range``; on x86 above 33 pages the whole mm); the
  PTEs keep their Accessed/Dirty bits (``pte_modify`` preserves them) and the second call
  makes anon-exclusive and shared pages writable again without a fault
  (``MM_CP_TRY_CHANGE_WRITABLE``). So every re-touch after ``arm`` walks the page table and
  sets the Accessed bit: the control for "accessed-bit methods miss accesses whose TLB
  entries stay cached" (``referenced``, ``idle-page``, DAMON, ``mglru``). Cost: two
  page-table walks of the arena, untimed. No cheaper flush is both portable and
  sure: ``mprotect`` with unchanged flags returns early, and a flush of a small sub-range
  reaches the whole mm only through an x86 tunable
  (``tlb_single_page_flush_ceiling``). *Refused* for trackers whose evidence is a page
  protection (``mprotect``, ``uffd-wp``, ``rwp``, ``rwp-rfc``, ``uffd-minor``,
  ``soft-dirty``): their arm already flushes (changing a protection must), so the control
  means nothing there, and a protection round trip over their armed range is exactly the
  kind of change that could rewrite their state (an ``mprotect`` tracker's PROT_NONE would
  simply be undone). Allowed, and a no-op, for ``shmem-zap`` (after its zap there are no
  PTEs to flush). Each tracker says which it is (``Tracker.interferences``); one that does
  not name tlb-flush is refused until someone checks it.
- ``mglru-age`` (after_touch): one MGLRU aging, with ``force_scan``, of the memcg this
  process is charged to (debugfs ``lru_gen``: ``+ memcg_id node_id max_seq 1 1`` per node),
  as memory pressure would do between the accesses and the tracker's read-back. The aging
  walk clears the Accessed bits of the memcg's page tables; whether the tracker's evidence
  survives it is the question ("MGLRU ignores idle bits"). Unavailable without MGLRU, when
  its main switch or page-table walk is off (``--mglru on`` turns both on for the run),
  without root or without debugfs ``lru_gen``. The memcg is looked up at every interval
  (``/proc/self/cgroup`` in the memory hierarchy, matched by path in ``lru_gen``), because
  the ``mglru`` tracker moves this process into a memcg of its own.

Neither reads or writes a byte of the arena: only ``mprotect`` and debugfs writes, so a
tracker that resolves synchronous userfaultfd faults in Python could never deadlock on a
fault taken with the GIL held. A failed interference does not end the cell: the interval's
``status`` names what failed (degraded) and ``interfere_ns`` its cost.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass, field
from typing import ClassVar

from bench.errors import HotbenchError
from bench.kernel import libc, cgroup, mglru, procfs

__all__ = ["AFTER_ARM", "AFTER_TOUCH", "NONE", "Outcome", "Interference", "REGISTRY", "names", "get",
           "find_memcg", "aging_commands", "own_memcg_path"]

AFTER_ARM, AFTER_TOUCH = "after_arm", "after_touch"
NONE = "none"


@dataclass
class Outcome:
    """What one hook call did: its wall time, "ok" or why it failed, details for ``extra``."""

    ns: int
    status: str = "ok"
    info: dict = field(default_factory=dict)


class Interference:
    name: ClassVar[str]
    when: ClassVar[str | None]  # AFTER_ARM, AFTER_TOUCH, or None (never runs)
    summary: ClassVar[str]

    @classmethod
    def unavailable(cls) -> str | None:
        """None when this interference can run here, else the one-line reason. Reads only."""
        return None

    # True when it means something only beside trackers checked for it: a tracker that does not
    # name it in ``Tracker.interferences`` is refused.
    checked_per_tracker: ClassVar[bool] = False

    @classmethod
    def refuses(cls, tracker_cls) -> str | None:
        """None when it may run beside *tracker_cls*, else the one-line reason (the tracker's own,
        ``Tracker.interferences``)."""
        declared = getattr(tracker_cls, "interferences", {})
        if cls.name in declared:
            why = declared[cls.name]
            return f"{cls.refusal or cls.name}; {tracker_cls.name} {why}" if why else None
        if cls.checked_per_tracker:
            checked = ", ".join(sorted(n for n, c in _trackers().items()
                                       if cls.name in c.interferences and c.interferences[cls.name] is None))
            return f"{cls.name} has not been checked with tracker {tracker_cls.name!r} (checked: {checked})"
        return None

    # The start of a refusal's reason, before the tracker's own words.
    refusal: ClassVar[str] = ""

    def apply(self, arena) -> dict:
        """Do it once; returns details for the row's ``extra``; raises OSError when it could not."""
        return {}

    def hook(self, when: str, arena) -> Outcome | None:
        """Run at lockstep point *when* if that is this interference's; None otherwise."""
        if when != self.when:
            return None
        wall0 = time.perf_counter_ns()
        try:
            info, status = self.apply(arena), "ok"
        except ArenaLeftChanged:
            raise  # the cell cannot go on (run_cell records it as an error and stops the tracker)
        except OSError as e:
            info, status = {}, f"interference {self.name} failed: {e}"
        return Outcome(time.perf_counter_ns() - wall0, status, info)

    @classmethod
    def describe(cls) -> dict:
        return {"when": cls.when, "summary": cls.summary}


class NoInterference(Interference):
    name = NONE
    when = None
    summary = "no interference"


def _trackers() -> dict:
    from bench import trackers

    return trackers.registry()


# ---------------------------------------------------------------- tlb-flush

class TlbFlush(Interference):
    """Trackers whose evidence is a page protection (write-protect, PROT_NONE, uffd registration)
    refuse it with their reason: their arm flushes anyway, and an mprotect round trip could rewrite
    it. Trackers that read Accessed bits (the control's purpose), or hold no PTEs after arm, accept it."""

    name = "tlb-flush"
    when = AFTER_ARM
    summary = ("after arm, mprotect the arena PROT_READ then PROT_READ|PROT_WRITE: its TLB entries are "
               "flushed, so re-touches set Accessed bits again")
    checked_per_tracker = True
    refusal = "tlb-flush is a control for accessed-bit trackers"

    def apply(self, arena) -> dict:
        libc.mprotect(arena.addr, arena.size, libc.PROT_READ)
        try:
            libc.mprotect(arena.addr, arena.size, libc.PROT_READ | libc.PROT_WRITE)
        except OSError as e:  # a read-only arena would SIGSEGV the workload's next write
            raise ArenaLeftChanged(e.errno, f"tlb-flush left the arena read-only: {e.strerror}") from None
        return {}


# ---------------------------------------------------------------- mglru-age

_WALK = mglru.LRU_GEN_CORE | mglru.LRU_GEN_MM_WALK


def own_memcg_path(proc_cgroup_text: str | None = None, hierarchy: cgroup.Hierarchy | None = None) -> str:
    """This process's memcg as ``lru_gen`` prints it: its path in the memory hierarchy, or
    '/' (the root memcg) when no hierarchy with the memory controller is mounted."""
    if hierarchy is None:
        hierarchy = cgroup.memory_hierarchy()
        if hierarchy is None:
            return "/"
    text = proc_cgroup_text if proc_cgroup_text is not None else (procfs.read_text(procfs.proc_path("cgroup")) or "")
    path = cgroup.parse_proc_cgroup(text, hierarchy.version)
    if path is None:
        raise OSError(errno.ENOENT, f"no {hierarchy.version} memory cgroup listed", procfs.proc_path("cgroup"))
    return path


def find_memcg(memcgs: list[mglru.LruGenMemcg], path: str) -> mglru.LruGenMemcg:
    """The ``lru_gen`` entry of the memcg at *path* (the last one listed if a dying memcg shares
    it; the memcg-less "" entry for '/' when the memory controller is disabled). OSError if none."""
    matches = [m for m in memcgs if m.path == path]
    if not matches and path == "/":
        matches = [m for m in memcgs if m.path == ""]
    if not matches:
        raise OSError(errno.ENOENT, f"memcg {path!r} (from /proc/self/cgroup) is not listed", mglru.DEBUGFS_LRU_GEN)
    return matches[-1]


def aging_commands(memcg: mglru.LruGenMemcg) -> dict[int, str]:
    """node -> the command that ages it once from its current max_seq, force_scan, anon included."""
    return {node: mglru.aging_command(memcg.id, node, memcg.max_seq(node), 1, 1)
            for node, gens in sorted(memcg.nodes.items()) if gens}


class MglruAge(Interference):
    name = "mglru-age"
    when = AFTER_TOUCH
    summary = ("after the workload's touches, age this process's memcg once through debugfs lru_gen "
               "(force_scan: every page table walked, Accessed bits cleared)")

    def __init__(self, lru_gen: str | None = None, memcg_path=own_memcg_path):
        self.lru_gen = lru_gen or mglru.DEBUGFS_LRU_GEN
        self._memcg_path = memcg_path

    @classmethod
    def unavailable(cls) -> str | None:
        mask = mglru.enabled()
        if mask is not None and mask & _WALK != _WALK:
            what = "MGLRU is off" if not mask & mglru.LRU_GEN_CORE else "MGLRU's page-table walk (0x0002) is off"
            return f"{what} ({mglru.LRU_GEN_ENABLED} is {mask:#06x}): run with --mglru on"
        return mglru.probe()

    def apply(self, arena) -> dict:
        path = self._memcg_path()
        before = find_memcg(mglru.read_lru_gen(self.lru_gen), path)
        commands = aging_commands(before)
        if not commands:
            raise OSError(errno.ENODATA, f"memcg {path!r} has no generations to age", self.lru_gen)
        problems = []
        for node in commands:
            try:
                mglru.age(before.id, node, before.max_seq(node), 1, 1, path=self.lru_gen)
            except OSError as e:
                problems.append(f"node {node}: {os.strerror(e.errno) if e.errno else e}")
        after = [m for m in mglru.read_lru_gen(self.lru_gen) if m.id == before.id]
        seqs = {str(node): [before.max_seq(node), after[-1].max_seq(node) if after and after[-1].nodes.get(node)
                            else None] for node in commands}
        stuck = [n for n, (old, new) in seqs.items() if new is None or new <= old]
        if problems or stuck:
            why = "; ".join(problems) or f"no new generation on node(s) {', '.join(stuck)}"
            raise OSError(errno.EAGAIN, f"aging memcg {before.id} ({path}) refused: {why}", self.lru_gen)
        return {"memcg": path, "memcg_id": before.id, "max_seq": seqs}


# ---------------------------------------------------------------- registry

REGISTRY: dict[str, type[Interference]] = {cls.name: cls for cls in (NoInterference, TlbFlush, MglruAge)}


class ArenaLeftChanged(OSError):
    """An interference failed half-way and left the arena unusable: the cell ends as an error."""


def names() -> list[str]:
    return list(REGISTRY)


def get(name: str) -> type[Interference]:
    """The class registered as *name*; HotbenchError naming the valid ones otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise HotbenchError(f"unknown interference {name!r}; choose from: {', '.join(REGISTRY)}") from None
