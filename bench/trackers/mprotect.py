"""``mprotect``: read/write tracking emulated in user space with PROT_NONE and a SIGSEGV handler.

``arm`` makes the whole arena PROT_NONE (one call, which also merges the VMAs the previous
interval split). The first access to a page faults; a handler compiled with
``numba.cfunc`` marks the page and opens it just enough for that access: a read fault
marks it read and makes it PROT_READ, a write fault (x86 page-fault error code bit 1)
marks it written and makes it PROT_READ|PROT_WRITE. A write after a read therefore faults
again and is seen; a read after a write is not (the page is already open), so ``read`` is
"pages whose first access was a read". An x86 read-modify-write instruction faults once,
as a write. ``collect`` re-opens the arena before reading the marks.

The handler is async-signal-safe: no allocation, no Python, no libc. It reads ``si_addr``,
``si_code`` and ``gregs[REG_ERR]`` at the offsets in ``bench.kernel.signals`` and makes
raw ``mprotect``/``rt_sigaction``/``tgkill`` syscalls (``bench.kernel.nbsys.syscall4``, an
inline ``syscall`` instruction), so it never clobbers the interrupted thread's ``errno``; marks
and counters are atomic (``nbsys``' relaxed atomics), so
concurrent threads faulting at once lose nothing. It finds its state through a JIT
symbol: the process's one state block (int64 slots, never freed) is registered once with
``llvmlite.binding.add_symbol`` and the handler refers to it as an external global, so its
machine code holds no per-process address and is cached on disk (``cache=True``) like the
rest of the suite's numba code. The per-page marks (one uint8 per base page: bit 0 read,
bit 1 written) live in an array allocated by ``start`` whose address the block holds.

A fault that is not ours (outside the arena, not ``SEGV_ACCERR``, or sent by ``kill``)
goes to whoever had SIGSEGV before ``start`` (Python's default, pytest's faulthandler):
the handler re-opens the arena, re-installs the saved action with ``rt_sigaction`` and
returns, so the faulting instruction runs again and faults into that handler (a signal
sent by a process, which would not recur, is re-raised with ``tgkill``). The interval
is then reported as ``handler-displaced`` and the next ``arm`` re-installs the handler.

Each page opened in the middle of a PROT_NONE range splits its VMA in three, so about
(vm.max_map_count - VMAs in use) / 2 scattered pages fit in an interval. When
``mprotect`` fails (ENOMEM at the limit) the handler marks the interval overflowed and
re-opens the whole arena (one call: it only merges VMAs, so it succeeds); later
accesses are invisible and ``collect`` says ``map-count-limit``.

Not for hugetlb: ``mprotect`` on a hugetlbfs VMA must be 2 MiB-aligned, so a fault could
only open (and report) 512 base pages at a time, and this tracker answers per base page.
THP memory works, but ``mprotect`` on part of a huge page splits its PMD mapping, so the
arena stays PTE-mapped (until khugepaged) once tracked.
"""

from __future__ import annotations

import errno
import os
from functools import partial

import numpy as np

from bench.errors import HotbenchError
from bench.kernel import libc, mm_events, probe, procfs, signals
from bench.micro import kit
from bench.trackers import _primitives
from bench.trackers._base import PAGE, READS_AND_WRITES, RUNS, CostMatch, Observation, Tracker, TrackerUnavailable

SEEN_READ, SEEN_WRITE = 1, 2  # bits of the per-page mark

# Slots of the state block (int64). _H_OLD.._H_OLD+3 hold the previous action as a kernel_sigaction.
_H_BASE, _H_SIZE, _H_PAGES = 0, 1, 2
_H_FAULTS, _H_READ_FAULTS, _H_WRITE_FAULTS = 3, 4, 5
_H_OVERFLOW, _H_ERRNO, _H_FORWARDED, _H_FORWARDED_ADDR = 6, 7, 8, 9
_H_OLD = 10
_H_SLOTS = 16
_SYMBOL = "hotbench_mprotect_state"
_SHIFT = 12  # base pages: the marks are per 4 KiB whatever the backing
_RW = libc.PROT_READ | libc.PROT_WRITE

_state: np.ndarray | None = None  # this process's state block; a JIT symbol names it, so never freed
_handler = None  # the compiled handler (numba CFunc), built or loaded from cache once per process
_owner: MprotectTracker | None = None  # SIGSEGV has one action per process: one started tracker


def _compile_handler():
    """Register the state block's symbol, then build (or load from the disk cache) the handler.

    numba is imported here, not at module level, so the registry and ``probe`` stay fast.
    The helpers (``bench.kernel.nbsys``: raw syscalls, relaxed atomics) become module globals
    rather than closure cells: numba keys its disk cache on the pickled closure, which differs
    per process.
    """
    global _state, _handler, _nb_state, _nb_address, _nb_load_i32, _nb_load_i64, _nb_store_i64
    global _nb_add_i64, _nb_or_u8, _nb_syscall4
    if _handler is not None:
        return _handler
    import llvmlite.binding as llvm
    from numba import cfunc, types

    from bench.kernel import nbsys

    if _state is None:
        _state = np.zeros(_H_SLOTS, np.int64)
        llvm.add_symbol(_SYMBOL, _state.ctypes.data)
    _nb_state = nbsys.external_global(_SYMBOL)
    _nb_address, _nb_load_i32, _nb_syscall4 = nbsys.address, nbsys.load_i32, nbsys.syscall4
    _nb_load_i64, _nb_store_i64 = nbsys.atomic_load, nbsys.atomic_store
    _nb_add_i64, _nb_or_u8 = nbsys.atomic_add, nbsys.atomic_or_u8
    _handler = cfunc(types.void(types.int32, types.voidptr, types.voidptr), cache=True)(_handle_sigsegv)
    return _handler


# Frozen into the handler at compile time (module globals, not closure cells: see above).
_NR_mprotect, _NR_rt_sigaction = signals.__NR_mprotect, signals.__NR_rt_sigaction
_NR_getpid, _NR_gettid, _NR_tgkill = signals.__NR_getpid, signals.__NR_gettid, signals.__NR_tgkill
_SI_CODE, _SI_ADDR, _REG_ERR = signals.SIGINFO_SI_CODE, signals.SIGINFO_SI_ADDR, signals.UCONTEXT_REG_ERR
_SEGV_ACCERR, _X86_PF_WRITE, _PROT_READ = signals.SEGV_ACCERR, signals.X86_PF_WRITE, libc.PROT_READ


def _handle_sigsegv(signum, info, ctx):  # compiled by _compile_handler; never called from Python
    h = _nb_state()
    code = _nb_load_i32(_nb_address(info) + _SI_CODE)
    addr = _nb_load_i64(_nb_address(info) + _SI_ADDR)
    base = _nb_load_i64(h + 8 * _H_BASE)
    size = _nb_load_i64(h + 8 * _H_SIZE)
    offset = addr - base
    if code == _SEGV_ACCERR and size > 0 and offset >= 0 and offset < size:
        _nb_add_i64(h + 8 * _H_FAULTS, 1)
        if _nb_load_i64(h + 8 * _H_OVERFLOW) != 0:  # a page protected again by a racing thread
            _nb_syscall4(_NR_mprotect, base, size, _RW, 0)
            return
        page = offset >> _SHIFT
        mark = _nb_load_i64(h + 8 * _H_PAGES) + page
        if _nb_load_i64(_nb_address(ctx) + _REG_ERR) & _X86_PF_WRITE:
            _nb_or_u8(mark, SEEN_WRITE)
            _nb_add_i64(h + 8 * _H_WRITE_FAULTS, 1)
            prot = _RW
        else:
            _nb_or_u8(mark, SEEN_READ)
            _nb_add_i64(h + 8 * _H_READ_FAULTS, 1)
            prot = _PROT_READ
        result = _nb_syscall4(_NR_mprotect, base + (page << _SHIFT), 1 << _SHIFT, prot, 0)
        if result >= 0:
            return
        # vm.max_map_count (ENOMEM) or worse: stop tracking this interval, let everything run.
        _nb_store_i64(h + 8 * _H_ERRNO, -result)
        _nb_store_i64(h + 8 * _H_OVERFLOW, 1)
        if _nb_syscall4(_NR_mprotect, base, size, _RW, 0) >= 0:
            return
        # Cannot re-open the arena either: hand over below rather than fault here forever.
    _nb_add_i64(h + 8 * _H_FORWARDED, 1)
    _nb_store_i64(h + 8 * _H_FORWARDED_ADDR, addr)
    if size > 0:
        _nb_syscall4(_NR_mprotect, base, size, _RW, 0)
    _nb_syscall4(_NR_rt_sigaction, signum, h + 8 * _H_OLD, 0, 8)
    if code <= 0:  # sent by kill/tgkill/sigqueue: it will not recur by itself
        _nb_syscall4(_NR_tgkill, _nb_syscall4(_NR_getpid, 0, 0, 0, 0), _nb_syscall4(_NR_gettid, 0, 0, 0, 0),
                     signum, 0)


class MprotectTracker(Tracker):
    """PROT_NONE + a compiled SIGSEGV handler; per base page, reads and writes.

    hugetlb is not offered: ``mprotect`` there works only on whole 2 MiB pages, so each
    fault would report 512 base pages (see the module docstring).
    """

    name = "mprotect"
    mechanism = "mprotect"
    granularity = PAGE
    sees = READS_AND_WRITES
    backings = ("anon", "shmem", "thp")
    summary = "PROT_NONE + compiled SIGSEGV handler reopening each page on its first read / write fault"
    kernel_events = (mm_events.SIGSEGV_SENT, mm_events.CHANGE_PROTECTION, mm_events.CHANGE_PTE_RANGE)

    kernel_probe = staticmethod(probe.probe_mprotect)
    kconfig = ()  # plain mprotect and signals: every kernel
    raw_primitives = {"arm": _primitives.mprotect_whole("mprotect(NONE) whole arena", libc.PROT_NONE),
                      "collect": _primitives.mprotect_whole("mprotect(RW) whole arena", _RW)}
    interferences = {"tlb-flush": "keeps the arena PROT_NONE between faults; the round trip would make it "
                                  "accessible again"}
    cost_model = (
        CostMatch("arm", "anon", "arm/mprotect_none/1pct/4k", None, None, why=(
            "PROT_NONE over the one RW VMA the previous collect merged: every PTE changes, whatever was "
            "accessed; no state term")),
        CostMatch("collect", "anon", "scan/mprotect/restore/0pct/4k", "scan/mprotect/restore/1pct/4k", RUNS, why=(
            "mprotect(RW) rewrites every PTE and merges the VMAs the handler split: one per run of opened "
            "pages, not per page (the micro's 1 % are scattered: about one run each)")),
    )
    style = ("black", "X")
    order = 100

    @classmethod
    def micro_cases(cls) -> list:
        return _cases(cls.mechanism)

    @classmethod
    def unavailable(cls, backing: str | None = None) -> str | None:
        return signals.probe() or super().unavailable(backing)

    def __init__(self, **options):
        super().__init__(**options)
        self._marks: np.ndarray | None = None
        self._previous: signals.struct_sigaction | None = None  # the action stop() puts back

    def start(self, arena) -> None:
        global _owner
        reason = signals.probe()
        if reason:
            raise TrackerUnavailable(reason)
        if arena.backing not in self.backings:
            raise TrackerUnavailable(f"{self.name} does not work on {arena.backing} memory "
                                     f"(only {', '.join(self.backings)})")
        if _owner is not None and _owner is not self:
            raise HotbenchError("an mprotect tracker is already started in this process "
                                "(SIGSEGV has one handler per process): stop it first")
        if self._marks is not None:
            raise HotbenchError("this mprotect tracker is already started")
        if not arena.addr:
            raise HotbenchError("mprotect tracker started on a closed arena")
        _compile_handler()
        super().start(arena)
        _owner = self
        self._marks = np.zeros(arena.npages, np.uint8)
        _state[:] = 0
        _state[_H_PAGES] = self._marks.ctypes.data
        _state[_H_BASE] = arena.addr
        _state[_H_SIZE] = arena.size
        self._install()

    def _install(self) -> None:
        """Install the handler; keep the action it replaces for stop() and for forwarding."""
        new = signals.struct_sigaction(sa_handler=_handler.address,
                                       sa_flags=signals.SA_SIGINFO | signals.SA_NODEFER | signals.SA_ONSTACK)
        current = signals.sigaction(signals.SIGSEGV)
        self._set_forward(current)
        replaced = signals.sigaction(signals.SIGSEGV, new)
        if not replaced.same_as(current):  # changed in between: forward to what was really there
            self._set_forward(replaced)
        self._previous = replaced

    @staticmethod
    def _set_forward(action: signals.struct_sigaction) -> None:
        k = signals.kernel_sigaction.from_libc(action)
        _state[_H_OLD:_H_OLD + 4] = np.frombuffer(bytes(k), np.int64)

    def _installed(self) -> bool:
        return signals.sigaction(signals.SIGSEGV).handler == _handler.address

    def _arena(self):
        if self._marks is None or self.arena is None:
            raise HotbenchError("mprotect tracker used before start() or after stop()")
        return self.arena

    def arm(self) -> None:
        arena = self._arena()
        if not self._installed():  # a foreign fault handed SIGSEGV back, or someone replaced us
            self._install()
        self._marks[:] = 0
        _state[_H_FAULTS:_H_OLD] = 0
        libc.mprotect(arena.addr, arena.size, libc.PROT_NONE)

    def collect(self) -> Observation:
        arena = self._arena()
        libc.mprotect(arena.addr, arena.size, _RW)  # first: no more faults, VMAs merged again
        marks = self._marks
        accessed = marks != 0
        extra = {"faults": int(_state[_H_FAULTS]), "read_faults": int(_state[_H_READ_FAULTS]),
                 "write_faults": int(_state[_H_WRITE_FAULTS]), "overflow": int(_state[_H_OVERFLOW] != 0)}
        reasons = []
        if extra["overflow"]:
            seen = int(accessed.sum())
            extra["pages_seen_before_overflow"] = seen
            err = int(_state[_H_ERRNO])
            extra["mprotect_errno"] = err
            if err == errno.ENOMEM:
                limit = procfs.read_text(procfs.MAX_MAP_COUNT) or "?"
                reasons.append(f"map-count-limit: saw {seen} pages before vm.max_map_count ({limit}) "
                               f"was reached; later accesses invisible")
            else:
                reasons.append(f"mprotect-failed: {errno.errorcode.get(err, err)} ({os.strerror(err)}) "
                               f"after {seen} pages; later accesses invisible")
        if _state[_H_FORWARDED]:
            extra["forwarded"] = int(_state[_H_FORWARDED])
            reasons.append(f"handler-displaced: a SIGSEGV not ours (address {int(_state[_H_FORWARDED_ADDR]):#x}) "
                           f"went to the previous handler; later accesses invisible")
        return Observation(accessed=accessed, read=(marks & SEEN_READ) != 0, written=(marks & SEEN_WRITE) != 0,
                           status="; ".join(reasons) or "ok", extra=extra)

    def stop(self) -> None:
        global _owner
        try:
            arena = self.arena
            if self._marks is not None and arena is not None and arena.addr:
                try:
                    libc.mprotect(arena.addr, arena.size, _RW)
                except OSError:  # unmapped under us (ENOMEM): nothing left to re-open
                    pass
            if self._previous is not None:
                signals.sigaction(signals.SIGSEGV, self._previous)
                self._previous = None
        finally:
            if _owner is self:
                _state[:] = 0
                _owner = None
            self._marks = None
            super().stop()


TRACKERS = [MprotectTracker]


# ---------------------------------------------------------------- micro cases (hotbench micro)

def _tracked(stack, size: int):
    """An anon arena with this tracker's compiled SIGSEGV handler installed (it opens faulting pages)."""
    arena = kit.new_arena(stack, size, "anon")
    tracker = MprotectTracker()
    tracker.start(arena)
    stack.callback(tracker.stop)
    return arena


def _arm(size, stack, restore_timed=True):
    """PROT_NONE then restore, with the 1 % opened in between by the handler; without
    *restore_timed*, the tracker's arm alone: PROT_NONE over the one RW VMA that the previous
    collect (the untimed restore, which merges the opened pages back) left."""
    arena = _tracked(stack, size)
    pages = kit.pages(arena.npages, kit.ARM_FRACTION)

    def once():
        protect = kit.timed(libc.mprotect, arena.addr, arena.size, libc.PROT_NONE)
        kit.touch(arena, pages)  # each fault opens its page (splits the VMA)
        if restore_timed:
            return protect + kit.timed(libc.mprotect, arena.addr, arena.size, _RW)
        libc.mprotect(arena.addr, arena.size, _RW)
        return protect
    return once


def _scan_restore(size, stack, fraction):
    """The tracker's collect: mprotect(RW) of a PROT_NONE arena whose P pages the handler opened."""
    arena = _tracked(stack, size)
    pages = kit.pages(arena.npages, fraction)

    def once():
        libc.mprotect(arena.addr, arena.size, libc.PROT_NONE)
        kit.touch(arena, pages)  # each fault opens its page: a scattered page splits its VMA in three
        return kit.timed(libc.mprotect, arena.addr, arena.size, _RW)
    return once


def _fault_sigsegv(size, stack, backing):
    arena, loops = kit.fault_arena(stack, size, backing)
    tracker = MprotectTracker()
    tracker.start(arena)
    stack.callback(tracker.stop)

    def once():
        tracker.arm()
        elapsed = kit.timed_touch(loops, arena)
        tracker.collect()
        return elapsed
    return once


def _cases(mechanism: str) -> list[kit.Case]:
    out = [
        kit.Case("arm/mprotect/1pct/4k", "GiB", mechanism, "anon",
                 "mprotect(PROT_NONE) + mprotect(RW) of the whole arena; the 1 % opened in between "
                 "by the mprotect tracker's SIGSEGV handler (untimed)", _arm, splits=kit.ARM_FRACTION),
        # no splits: past the map-count limit the handler re-opens the whole arena, and the timed
        # PROT_NONE meets the same one RW VMA either way
        kit.Case("arm/mprotect_none/1pct/4k", "GiB", mechanism, "anon",
                 "mprotect(PROT_NONE) of the whole arena alone (the mprotect tracker's arm): one RW VMA, its "
                 "1 % opened by the handler and the arena restored since the previous arm (untimed)",
                 partial(_arm, restore_timed=False)),
    ]
    # not at 100 %: a SIGSEGV per page per run, and the opened pages merge into one VMA anyway
    out += [kit.Case(f"scan/mprotect/restore/{pct}/4k", "GiB", mechanism, "anon",
                     "mprotect(RW) of the whole arena (the mprotect tracker's collect); PROT_NONE, then P "
                     "of the pages opened by the handler, each scattered one a VMA of its own",
                     partial(_scan_restore, fraction=fraction), splits=fraction)
            for pct, fraction in kit.PERCENTS.items() if fraction < 1]
    return out + kit.fault_cases("mprotect-sigsegv", mechanism, ("anon", "thp"), "write to a PROT_NONE page: "
                                 "SIGSEGV to the mprotect tracker's compiled handler, which opens the page",
                                 _fault_sigsegv)
