"""The primitives ``hotbench micro`` times: one ``Case`` per benchmark, in a fixed order.

A case's ``setup(size, stack)`` builds everything outside the timed region (arena,
registration, prefault, the pages of the accessed fraction, numba loads) and returns
``once``; ``once()`` puts the memory back in the state the primitive expects (untimed)
and returns the seconds of one run of the primitive alone. Everything ``setup`` takes
is released by closing *stack*.

Each mechanism's cases live in its tracker (``Tracker.micro_cases``), built from the pieces
here (``Case``, ``new_arena``, ``touch``, ``pages``, ``timed``, ``fault_arena``, ``timed_touch``,
``placed``); ``bench.micro.cases()`` gathers them from the registry with the plain-memory cases
that belong to no mechanism (``plain_cases``: first touch) and puts them in table order
(``ordered``: arm, then scan, then fault).

Names (see ``bench/micro/suite.py`` for units):
  arm/<primitive>/<P>/4k               one arm of the whole arena, P of its pages accessed
                                       since the previous arm: 1pct for every primitive (the
                                       steady state of a tracker whose working set is 1 %);
                                       0pct and 100pct too where the arm's cost depends on the
                                       pages in that state (clear_refs 1 clears young PTEs,
                                       MADV_DONTNEED unmaps present pages), so a fit of a
                                       tracker's cost can be predicted (``Tracker.cost_model``)
  scan/<primitive>/<variant>/<P>/4k    one collect of the whole arena with P = 0pct, 1pct or
                                       100pct of its pages accessed (written, for uffd-wp state)
  fault/<kind>/<4k|thp>                touching every 4 KiB page of an armed arena once;
                                       the round trips through a server thread (uffd-minor,
                                       rwp-sync) unpinned, and as <kind>-same-cpu and
                                       <kind>-other-cpu with toucher and server pinned
                                       (bench.fault_path: the placement decides the cost)

Timed touches (the fault benchmarks) run in numba ``nogil`` loops (``bench.micro.loops``):
synchronous userfaultfd faults block the toucher until a compiled server thread resolves
them. The untimed touches of arm/scan setups use numpy (see ``touch``). The 1 % is a fixed
seeded random set of pages.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from bench.arena import BASE_PAGE, Arena, backing_unavailable
from bench.kernel import libc, procfs

__all__ = ["Case", "plain_cases", "ordered", "fault_cases", "PERCENTS", "STATE_PERCENTS", "ARM_FRACTION", "PLACEMENTS",
           "new_arena", "touch", "pages", "timed", "fault_arena", "timed_touch", "touch_after", "placed", "zap_refault"]

PERCENTS = {"0pct": 0.0, "1pct": 0.01, "100pct": 1.0}
ARM_FRACTION = 0.01
# the arm cases whose cost depends on the pages in state also run at these (after 1pct)
STATE_PERCENTS = {"0pct": 0.0, "100pct": 1.0}
# the pinned placements of the served round trips (the unpinned ones keep the plain names)
PLACEMENTS = {"same-cpu": "toucher and server pinned to one CPU", "other-cpu": "toucher and server pinned to two CPUs"}
_SEED = 1
VMA_SLACK = 1024  # VMAs a worker may map beyond the manager's (numba, pyperf) when too_big() is asked
_KINDS = ("arm", "scan", "fault")


@dataclass(frozen=True)
class Case:
    name: str
    per: str  # "GiB": seconds per GiB of arena; "page": seconds per 4 KiB page touched
    mechanism: str | None  # a mechanism of bench.trackers.probe; None: plain memory, always there
    backing: str
    what: str  # the timed region and the state before it, one line
    setup: Callable[[int, contextlib.ExitStack], Callable[[], float]]
    splits: float = 0.0  # share of the arena's pages opened one by one, each splitting a VMA (mprotect)
    placement: str | None = None  # a pinned bench.fault_path placement of a served round trip

    def too_big(self, size: int) -> str | None:
        """Why this case cannot reach its state in an arena of *size* bytes (None: it can).

        Each scattered page the mprotect handler opens is a VMA of its own, two more in all;
        past vm.max_map_count the handler gives up and opens the whole arena (as the tracker
        does, reporting map-count-limit), so the timed call would meet a state it does not
        name: at 16 GiB, 1 % is 41,943 pages, 83,887 VMAs against the default 65,530.
        """
        if not self.splits:
            return None
        needed = 2 * round(size // BASE_PAGE * self.splits) + 1
        limit = int(procfs.read_text(procfs.MAX_MAP_COUNT) or 0)
        in_use = len((procfs.read_text(procfs.proc_path("maps")) or "").splitlines()) + VMA_SLACK
        if needed + in_use <= limit:
            return None
        return (f"{needed:,} VMAs for its scattered opened pages, {in_use:,} in use (with slack) and "
                f"vm.max_map_count {limit:,}: raise it or use a smaller --size")

    def backing_unavailable(self) -> str | None:
        """None when this kernel gives the case's backing, else the one-line reason (whether its
        mechanism is here is the registry's answer: ``bench.micro.unavailable``)."""
        reason = backing_unavailable(self.backing)
        if reason:
            return f"{self.backing} memory: {reason}"
        return self._placement_unavailable()

    def _placement_unavailable(self) -> str | None:
        """other-cpu on a process that may use one CPU (a one-vCPU guest, --affinity 0)."""
        if self.placement is None:
            return None
        from bench import fault_path

        try:
            fault_path.placement_cpus(self.placement)
        except ValueError as e:
            return str(e)
        return None


# ---------------------------------------------------------------- building blocks

def new_arena(stack: contextlib.ExitStack, size: int, backing: str, prefault: bool = True) -> Arena:
    return stack.enter_context(Arena(size, backing, prefault=prefault))


def touch(arena: Arena, which: np.ndarray) -> None:
    """Untimed setup touches of arm/scan: one byte written per listed page, from numpy.

    No synchronous fault can happen in those states (async uffd modes, zapped shmem, PROT_NONE
    with the mprotect tracker's compiled handler), so the GIL is harmless here and their
    workers never load numba (~1.5 s per process).
    """
    arena.view[which * BASE_PAGE] = 1


def fault_arena(stack: contextlib.ExitStack, size: int, backing: str, prefault: bool = True):
    """(arena, the compiled loops module) for a fault benchmark, the loops loaded before any timing."""
    from bench.micro import loops

    loops.warm()
    return new_arena(stack, size, backing, prefault), loops


def timed_touch(loops, arena: Arena) -> float:
    """Seconds for one nogil pass writing every 4 KiB page of the arena (the timed region of faults)."""
    return timed(loops.touch_every, arena.view, BASE_PAGE)


def pages(npages: int, fraction: float) -> np.ndarray:
    """A fixed seeded set of ``fraction`` of the pages (at least one when fraction > 0), sorted."""
    if fraction <= 0:
        return np.zeros(0, np.int64)
    if fraction >= 1:
        return np.arange(npages, dtype=np.int64)
    count = max(1, round(npages * fraction))
    return np.sort(np.random.default_rng(_SEED).choice(npages, count, replace=False)).astype(np.int64)


# Set by 'hotbench micro --cold' for the duration of a benchmark: called right before every timed
# region, untimed (after a case's own preparation, which would otherwise warm the caches again).
before_timed: Callable[[], None] | None = None


def timed(fn: Callable, *args, **kwargs) -> float:
    """Seconds of one call of *fn*: the timed region of every case."""
    if before_timed is not None:
        before_timed()
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


def placed(stack: contextlib.ExitStack, name: str):
    """The fault_path placement *name*, the calling thread (the toucher) pinned to it until *stack* closes."""
    from bench import fault_path

    placement = fault_path.placement_cpus(name)
    stack.callback(fault_path.unpin, fault_path.pin(placement))
    return placement


def touch_after(loops, arena: Arena, rearm: Callable[[], object]) -> Callable[[], float]:
    """A fault case's ``once``: *rearm* (untimed: protect or zap the whole arena again), then one
    timed nogil pass writing every 4 KiB page."""
    def once():
        rearm()
        return timed_touch(loops, arena)
    return once


def zap_refault(size, stack, backing, prefault=True):
    """Refault after MADV_DONTNEED: shmem keeps its pages in the page cache, anon frees them."""
    arena, loops = fault_arena(stack, size, backing, prefault)
    return touch_after(loops, arena, partial(libc.madvise, arena.addr, arena.size, libc.MADV_DONTNEED))


def fault_cases(kind: str, mechanism: str | None, backings: tuple[str, ...], what: str, setup,
                placement: str | None = None) -> list[Case]:
    """``fault/<kind>/<4k|thp>``, one case per backing, each touching every 4 KiB page once;
    *placement*: the pinned placement its served round trip runs in (``placed``)."""
    return [Case(f"fault/{kind}/{'thp' if backing == 'thp' else '4k'}", "page", mechanism, backing,
                 f"{what}; every 4 KiB page of the arena touched once, in order", partial(setup, backing=backing),
                 placement=placement)
            for backing in backings]


# ---------------------------------------------------------------- the table

def plain_cases() -> list[Case]:
    """Cases of plain memory, no mechanism's: the yardstick of every fault."""
    return fault_cases("first-touch", None, ("anon", "thp"), "first write to freshly unpopulated anonymous memory",
                       partial(zap_refault, prefault=False))


def ordered(cases: list[Case]) -> list[Case]:
    """*cases* in table order: arm, then scan, then fault, each in the order given; a name given
    twice (a case two trackers of one mechanism share) counted once."""
    found: dict[str, Case] = {}
    for case in cases:
        found.setdefault(case.name, case)
    kind = {k: i for i, k in enumerate(_KINDS)}
    return sorted(found.values(), key=lambda c: kind.get(c.name.partition("/")[0], len(_KINDS)))
