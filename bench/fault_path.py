"""Where a synchronous userfaultfd fault's time goes, per thread placement.

A MINOR (or RWP sync) fault is a round trip between two threads: the faulting thread
enters the kernel, queues a message and wakes the server; the server reads it, resolves
the page (``UFFDIO_CONTINUE`` / ``UFFDIO_RWPROTECT``), which wakes the faulting thread;
that thread returns to user space and goes on to its next page. Where the two threads run
decides most of the cost on a VM: a wake-up aimed at a CPU idling in HLT costs a VM exit
and the host scheduling that vCPU again.

Placements (``PLACEMENTS``): ``same-cpu`` (toucher and server pinned to one CPU: each
wake-up is a local context switch), ``other-cpu`` (pinned to two different CPUs: each
wake-up crosses CPUs) and ``unpinned`` (the scheduler decides).

``round_trip`` times a nogil loop writing every page of a freshly zapped (or protected)
arena, once per page (the micro benchmark's loop). ``breakdown`` runs the same loop with
tracefs events on the two threads and splits each fault into:

  entry->wake     fault entry (exceptions/page_fault_user) to the server's wake-up being
                  issued (sched_waking of the server)
  server wake     that sched_waking to the server running (sched_switch to it)
  server read     server running to its resolving ioctl (sys_enter_ioctl): poll returns,
                  read(2) of the message
  resolve         the ioctl until it wakes the faulting thread (sched_waking of it)
  toucher wake    that sched_waking to the faulting thread running (sched_switch to it)
  back to user    that switch to the next fault's entry: the rest of the fault, the return
                  to user space and the loop's next page

Tracing adds its own cost to every event, so the traced round trip is longer than the
untimed one; the report shows both.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import threading
import time
from dataclasses import dataclass

import numpy as np

from bench.arena import BASE_PAGE, Arena
from bench.kernel import libc, tracefs, uffd, uffd_server

__all__ = ["PLACEMENTS", "AUTO", "SEGMENTS", "Placement", "placement_cpus", "resolve", "pin", "unpin", "pinned",
           "describe_all",
           "round_trip", "breakdown"]

SAME_CPU, OTHER_CPU, UNPINNED = "same-cpu", "other-cpu", "unpinned"
PLACEMENTS = (SAME_CPU, OTHER_CPU, UNPINNED)
AUTO = "auto"  # same-cpu for a one-thread workload, else unpinned (see resolve)
SEGMENTS = ("entry->wake", "server wake", "server read", "resolve", "toucher wake", "back to user")


@dataclass(frozen=True)
class Placement:
    """CPUs for the threads that touch memory and for the fault server (None: not pinned)."""

    name: str
    toucher: set[int] | None
    server: set[int] | None

    def describe(self) -> dict:
        def cpus(s):
            return None if s is None else sorted(s)
        return {"placement": self.name, "toucher_cpus": cpus(self.toucher), "server_cpus": cpus(self.server)}


def placement_cpus(name: str, allowed: set[int] | None = None) -> Placement:
    """The CPUs of placement *name* among *allowed* (default: this process's affinity).

    Pinned placements use the first allowed CPU for the toucher and, for other-cpu, the
    second for the server. Raises ValueError for an unknown name or other-cpu on one CPU.
    """
    allowed = sorted(allowed or os.sched_getaffinity(0))
    if name == UNPINNED:
        return Placement(name, None, None)
    if name == SAME_CPU:
        return Placement(name, {allowed[0]}, {allowed[0]})
    if name == OTHER_CPU:
        if len(allowed) < 2:
            raise ValueError("other-cpu placement needs two CPUs; this process may use one")
        return Placement(name, {allowed[0]}, {allowed[1]})
    raise ValueError(f"unknown placement {name!r}; choose from {', '.join(PLACEMENTS)}")


def resolve(name: str, threads: int) -> Placement:
    """The placement a run uses for a fault-served tracker whose workload has *threads* threads.

    auto: same-cpu for one thread, because on a VM each cross-CPU wake-up of a vCPU idling
    in HLT costs a VM exit (the round trip has two: server and toucher), while on one CPU
    both are local context switches; with more threads one CPU would serialise the
    workload, so the scheduler places them (unpinned).
    """
    if name == AUTO:
        name = SAME_CPU if threads == 1 else UNPINNED
    return placement_cpus(name)


def pin(placement: Placement | None) -> set[int] | None:
    """Pin the calling thread (and the threads it starts) to the placement's toucher CPUs;
    returns the affinity to give back to ``unpin`` (None: nothing was changed)."""
    if placement is None or placement.toucher is None:
        return None
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, placement.toucher)
    return before


def unpin(before: set[int] | None) -> None:
    if before is not None:
        os.sched_setaffinity(0, before)


@contextlib.contextmanager
def pinned(placement: Placement):
    """``pin`` inside the block, ``unpin`` after it."""
    before = pin(placement)
    try:
        yield
    finally:
        unpin(before)


def describe_all(requested: str) -> dict:
    """For a manifest: the requested placement, the rule of auto, and each placement's CPUs here."""
    cpus = {}
    for name in PLACEMENTS:
        try:
            cpus[name] = placement_cpus(name).describe()
        except ValueError as e:
            cpus[name] = {"placement": name, "unavailable": str(e)}
    return {"requested": requested, "auto": "same-cpu for a one-thread workload, else unpinned", "cpus": cpus}


@contextlib.contextmanager
def _minor_served(arena: Arena, placement: Placement):
    """A MINOR-registered shmem arena and its compiled server; yields (re-arm, server thread id)."""
    uffd_server.warmup()
    with uffd.Userfaultfd(uffd.UFFD_FEATURE_MINOR_SHMEM) as u:
        u.register(arena.addr, arena.size, uffd.UFFDIO_REGISTER_MODE_MINOR)
        server = uffd_server.MinorFaultServer(u, arena.addr, arena.npages, arena.page_size, placement.server)
        try:
            yield (lambda: libc.madvise(arena.addr, arena.size, libc.MADV_DONTNEED)), server.native_id
        finally:
            u.unregister(arena.addr, arena.size)
            server.stop()


@contextlib.contextmanager
def _rwp_sync_served(arena: Arena, placement: Placement):
    from bench.micro import loops

    u = uffd.Userfaultfd(uffd.UFFD_FEATURE_RWP)  # without RWP_ASYNC: every fault waits for the server
    try:
        u.register(arena.addr, arena.size, uffd.UFFDIO_REGISTER_MODE_RWP)
        server = loops.RwpServer(u, arena.page_size, placement.server)
        try:
            yield (lambda: u.rwprotect(arena.addr, arena.size, True)), server.native_id
        finally:
            u.close()  # unregister first, so no fault can wait with nobody to resolve it
            server.stop()
    finally:
        u.close()


KINDS = {"uffd-minor": ("shmem", _minor_served), "rwp-sync": ("anon", _rwp_sync_served)}


def round_trip(kind: str, placement: Placement, size: int = 16 << 20, rounds: int = 5) -> list[float]:
    """µs per fault of *rounds* passes, each writing every page of a freshly armed arena once."""
    from bench.micro import loops

    backing, served = KINDS[kind]
    loops.warm()
    out = []
    with pinned(placement), Arena(size, backing) as arena, served(arena, placement) as (arm, _):
        for _ in range(rounds):
            arm()
            t0 = time.perf_counter_ns()
            loops.touch_every(arena.view, BASE_PAGE)
            out.append((time.perf_counter_ns() - t0) / 1e3 / arena.npages)
    return out


def _events(toucher: int, server: int) -> dict[str, str]:
    pids = f"pid == {toucher} || pid == {server}"
    return {
        "exceptions/page_fault_user": f"common_pid == {toucher}",
        "sched/sched_waking": pids,
        "sched/sched_switch": f"next_pid == {toucher} || next_pid == {server}",
        "raw_syscalls/sys_enter": f"common_pid == {server} && id == {tracefs.NR_ioctl}",
    }


def breakdown(kind: str, placement: Placement, size: int = 4 << 20) -> dict:
    """Per-fault means (µs) of each segment in ``SEGMENTS`` (they add up to the traced round
    trip), the median of the split faults' totals, how many faults were split, and the
    traced round trip (µs per page of the whole traced pass)."""
    from bench.micro import loops

    backing, served = KINDS[kind]
    loops.warm()
    with pinned(placement), Arena(size, backing) as arena, served(arena, placement) as (arm, server):
        toucher = threading.get_native_id()
        with tracefs.Session(_events(toucher, server), clock="x86-tsc") as trace:
            arm()
            trace.start()
            t0 = time.perf_counter_ns()
            loops.touch_every(arena.view, BASE_PAGE)
            traced = (time.perf_counter_ns() - t0) / 1e3 / arena.npages
            events = trace.stop()
        span = range(arena.addr, arena.end)
    segments = split_faults(events, toucher, server, span)
    out = {name: statistics.fmean(values) / 1e3 if values else float("nan") for name, values in segments.items()}
    totals = [sum(parts) for parts in zip(*segments.values())]
    out["split p50"] = statistics.median(totals) / 1e3 if totals else float("nan")
    out["faults split"] = len(totals)
    out["traced round trip"] = traced
    return out


def split_faults(events: list[tracefs.Event], toucher: int, server: int, arena: range) -> dict[str, list[int]]:
    """ns per segment for every fault that reached the server's ioctl and woke the toucher.

    A wake-up that did not happen (the server was still awake from the previous fault, or
    the toucher had not left its CPU yet) has no event: its segment counts as zero and the
    time goes to the segment after it. Faults outside *arena* (addresses) are not the loop's.
    """
    marks: list[tuple[int, int]] = []  # (mark 0..5, ns): fault, waking server, server runs, ioctl,
    for e in events:                   # waking toucher, toucher runs; the next fault closes it
        if e.name == "page_fault_user" and e.pid == toucher and int(e.fields.get("address", "0"), 16) in arena:
            marks.append((0, e.ns))
        elif e.name == "sched_waking" and e.fields.get("pid") == str(server):
            marks.append((1, e.ns))
        elif e.name == "sched_switch" and e.fields.get("next_pid") == str(server):
            marks.append((2, e.ns))
        elif e.name == "sys_enter" and e.pid == server:
            marks.append((3, e.ns))
        elif e.name == "sched_waking" and e.fields.get("pid") == str(toucher):
            marks.append((4, e.ns))
        elif e.name == "sched_switch" and e.fields.get("next_pid") == str(toucher):
            marks.append((5, e.ns))
    out: dict[str, list[int]] = {name: [] for name in SEGMENTS}
    starts = [i for i, (mark, _) in enumerate(marks) if mark == 0]
    for first, after in zip(starts, starts[1:]):
        found = {0: marks[first][1], 6: marks[after][1]}
        for mark, ns in marks[first + 1:after]:
            if mark > max(m for m in found if m < 6):  # in order; a repeated or late mark is ignored
                found[mark] = ns
        if 3 not in found or 4 not in found:
            continue  # not a served fault (e.g. a fault the kernel resolved itself)
        for m in range(1, 6):
            found.setdefault(m, found[m - 1])
        for m, name in enumerate(SEGMENTS):
            out[name].append(found[m + 1] - found[m])
    return out
