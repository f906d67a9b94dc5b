"""Kernel work per tracker phase: counts of the kernel events that explain a phase's cost.

``hotbench run --kernel-events`` counts, per lockstep interval, what the kernel did in each
phase — ``arm``, ``workload`` (the touches: the faults a tracker's protection costs) and
``collect`` — and, for a tracker whose work runs in a kernel thread (DAMON's kdamond), in that
thread over the whole interval (phase ``kdamond``). The events are a common set (page faults,
TLB flushes by reason, IPIs sent) plus those the tracker class declares in ``kernel_events``
(rmap walks, page-table walk steps, ``change_protection`` calls, ...). Each count lands in a
samples column ``kev.<phase>.<event>``; ``hotbench report`` shows them per page and per GiB.

How the counting is scoped, and why:

- **Per task, not per CPU.** Each phase runs synchronously in the runner's thread, so the
  events are counted on that task (``perf_event_open`` pid = the thread, cpu = -1), with
  ``inherit`` so that the threads it starts are counted too: the workload's threads when it has
  several, and a tracker's fault server (``uffd-minor``), which ``start`` creates after the
  counters are opened. Per-CPU counting would also count every other process on those CPUs:
  on a shared machine that is not the phase's work.
- **Other CPUs, counted at their source.** A TLB shootdown makes other CPUs flush; the
  receiving handler runs in whatever task is there and its tracepoint records no mm to filter
  on. So remote work is counted where the phase causes it: ``tlb_flush`` with reason
  ``TLB_REMOTE_SEND_IPI`` (one per flush that had to interrupt other CPUs) and the IPIs sent
  (``ipi_send_cpu``, ``ipi_send_cpumask``: one per single-CPU or multi-CPU send).
  ``tlb_remote`` (``TLB_REMOTE_SHOOTDOWN``) counts shootdowns *received* by a counted task —
  e.g. a workload thread interrupted by the tracker's flush in concurrent mode.
- **Kernel threads the phase wakes**, counted on their own pid: a tracker names them in
  ``helper_threads()`` (DAMON: its kdamond). Their counters run from ``arm`` to the end of
  ``collect``, since a kdamond works all interval long, not in step with the phases.

Counting costs a little per event hit (a tracepoint or kprobe handler runs), so the option is
off by default and the run's manifest says it was on: timings of such a run include that cost.
Events the running kernel cannot count (no tracepoint, no kprobe PMU, a function that is
inlined or not probeable) are absent — no column — and ``manifest["kernel_events"]`` says why.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field

from bench.kernel import libc, mm_events
from bench.kernel import perf_event as pe
from bench.kernel_profile import Profiling

__all__ = ["COMMON", "PREFIX", "PHASES", "column", "split_column", "Counters", "Session", "NONE"]

PREFIX = "kev."
PHASES = ("arm", "workload", "collect", "kdamond")

COMMON: tuple[pe.Event, ...] = mm_events.COMMON  # faults, TLB flushes by reason, IPIs sent


def column(phase: str, event: str) -> str:
    return f"{PREFIX}{phase}.{event}"


def split_column(name: str) -> tuple[str, str] | None:
    """('arm', 'fault_user') for 'kev.arm.fault_user'; None for any other column."""
    if not name.startswith(PREFIX):
        return None
    phase, _, event = name[len(PREFIX):].partition(".")
    return (phase, event) if event else None


def events_for(tracker_cls) -> tuple[pe.Event, ...]:
    """The common set plus the tracker's own events, each name once (the tracker's wins)."""
    own = tuple(getattr(tracker_cls, "kernel_events", ()))
    names = {e.name for e in own}
    return tuple(e for e in COMMON if e.name not in names) + own


class Counters:
    """*events* opened on task *pid*, one group per PMU (what cannot be opened is kept with its reason).

    ``start()`` / ``stop()`` bracket a phase and return the counts in between; counts are
    differences of two reads rather than reset-then-read, because an inherited counter keeps
    the totals of exited threads apart from its own count, and a reset clears only the latter.
    Tracepoints and kprobes go in separate groups: in one group, after the first disable and
    enable only the events of the leader's PMU counted again (measured on Debian's 7.3.4).
    """

    def __init__(self, events: tuple[pe.Event, ...], pid: int = 0, inherit: bool = False):
        self.unavailable: dict[str, str] = {}
        self._groups: dict[type, list[tuple[pe.Event, int]]] = {}  # PMU kind -> (event, fd), leader first
        self._before: dict[type, list[int]] = {}
        try:
            for event in events:
                group = self._groups.setdefault(type(event), [])
                try:
                    fd = pe.open_event(event, pid, group[0][1] if group else -1, inherit)
                except OSError as e:
                    self.unavailable[event.name] = f"{event.source}: {e.strerror}"
                    continue
                group.append((event, fd))
        except BaseException:
            self.close()
            raise
        self._groups = {kind: group for kind, group in self._groups.items() if group}

    @property
    def events(self) -> list[pe.Event]:
        return [event for group in self._groups.values() for event, _ in group]

    def _read(self) -> dict[type, list[int]]:
        return {kind: pe.read_group(group[0][1], len(group))[0] for kind, group in self._groups.items()}

    def _ioctl(self, request: int, what: str) -> None:
        for group in self._groups.values():
            libc.ioctl(group[0][1], request, pe.PERF_IOC_FLAG_GROUP, what)

    def start(self) -> None:
        self._before = self._read()
        self._ioctl(pe.PERF_EVENT_IOC_ENABLE, "PERF_EVENT_IOC_ENABLE")

    def stop(self) -> dict[str, int]:
        self._ioctl(pe.PERF_EVENT_IOC_DISABLE, "PERF_EVENT_IOC_DISABLE")
        after = self._read()
        return {event.name: a - b for kind, group in self._groups.items()
                for (event, _), a, b in zip(group, after[kind], self._before[kind])}

    def close(self) -> None:
        for group in self._groups.values():
            for _, fd in reversed(group):
                os.close(fd)
        self._groups = {}


@dataclass
class CellCounters:
    """One cell's counters: the runner's thread (inherited by the threads it starts) and the
    tracker's kernel threads; ``phase()`` brackets a phase, ``take()`` returns an interval's columns."""

    events: tuple[pe.Event, ...]
    record: dict  # the manifest's entry for this tracker, filled as counters open
    inherit: bool = True  # False when the threads this one starts are counted on their own (concurrent mode)
    profiling: Profiling | None = None  # run --kernel-profile
    key: dict = field(default_factory=dict)  # what identifies the cell in profile rows (run_id, cell, ...)
    profile_sets: dict = field(default_factory=dict)  # the tracker's named function sets (kernel_profile)
    main: Counters | None = None
    helpers: dict[str, Counters] = field(default_factory=dict)
    _columns: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _interval: int = -1

    def __enter__(self) -> CellCounters:
        self.main = Counters(self.events, 0, inherit=self.inherit)
        self._note(self.main, "")
        return self

    def attach(self, tracker) -> None:
        """After ``tracker.start``: count its kernel threads too."""
        for name, pid in tracker.helper_threads().items():
            counters = Counters(self.events, pid)
            self.helpers[name] = counters
            self._note(counters, f" (in {name})")

    def _note(self, counters: Counters, where: str) -> None:
        for event in counters.events:
            self.record["counted"].setdefault(event.name, {"source": event.source, "unit": event.unit})
        for name, why in counters.unavailable.items():
            self.record["unavailable"].setdefault(name + where, why)

    def _add(self, phase: str, counts: dict[str, int]) -> None:
        with self._lock:
            for event, n in counts.items():
                key = column(phase, event)
                self._columns[key] = self._columns.get(key, 0) + n

    @contextlib.contextmanager
    def phase(self, name: str):
        """Count (and, when asked, profile) the block, in this (the runner's) thread, as *name*;
        repeated phases add up."""
        profile = self.profiling.phase(name, {**self.key, "interval": self._interval}, self.profile_sets) \
            if self.profiling else contextlib.nullcontext()
        with profile:
            self.main.start()
            try:
                yield
            finally:
                counts = self.main.stop()
        self._add(name, counts)

    @contextlib.contextmanager
    def thread_phase(self, name: str):
        """Count the block in the calling thread — one started without inherited counters (a
        concurrent-mode workload thread) — as *name*, added to the other threads' counts."""
        counters = Counters(tuple(self.main.events), 0)
        try:
            counters.start()
            try:
                yield
            finally:
                counts = counters.stop()
        finally:
            counters.close()
        self._add(name, counts)

    def begin_interval(self) -> None:
        self._interval += 1
        for counters in self.helpers.values():
            counters.start()

    def take(self) -> dict[str, int]:
        """This interval's columns (helpers' counters stop here), and start afresh."""
        for name, counters in self.helpers.items():
            self._add(name, counters.stop())
        with self._lock:
            columns, self._columns = self._columns, {}
        return columns

    def __exit__(self, *exc) -> None:
        for counters in (*self.helpers.values(), self.main):
            if counters is not None:
                counters.close()
        self.helpers.clear()


class _NoCounters:
    """What the runner uses when kernel events are not counted: every call does nothing."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def attach(self, tracker) -> None:
        pass

    def phase(self, name: str):
        return contextlib.nullcontext()

    thread_phase = phase

    def begin_interval(self) -> None:
        pass

    def take(self) -> dict:
        return {}


NONE = _NoCounters()


class Session:
    """Kernel-event counting (*count*) and function profiling (*profile*: the phases to profile,
    ``bench.kernel_profile``) for one run, entered for the run's duration: hands each cell its
    counters and keeps, for the manifest, what was counted and why anything else was not."""

    def __init__(self, count: bool = True, profile: tuple[str, ...] = ()):
        self.count = count
        self.reason = pe.probe() if count else None
        self.trackers: dict[str, dict] = {}
        self.profiling = Profiling(profile) if profile else None

    def __enter__(self) -> Session:
        if self.profiling:
            self.profiling.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.profiling:
            self.profiling.__exit__(*exc)

    @property
    def profile_rows(self) -> list[dict]:
        return self.profiling.rows if self.profiling else []

    def for_cell(self, tracker_cls, inherit: bool = True, key: dict | None = None) -> CellCounters | _NoCounters:
        """Counters for one cell of *tracker_cls*; *inherit* False leaves the threads the runner
        starts to count themselves (``CellCounters.thread_phase``); *key* identifies the cell in
        profile rows."""
        events = events_for(tracker_cls) if self.count and not self.reason else ()
        profiling = self.profiling if self.profiling and not self.profiling.reason else None
        if not events and not profiling:
            return NONE
        record = self.trackers.setdefault(tracker_cls.name, {"counted": {}, "unavailable": {}})
        return CellCounters(events, record, inherit, profiling, dict(key or {}),
                            dict(getattr(tracker_cls, "profile_sets", {})))

    def notes(self) -> list[str]:
        """One line per thing asked for that this kernel cannot do (for the run's stderr)."""
        out = [f"kernel events not counted: {self.reason}"] if self.reason else []
        if self.profiling and self.profiling.reason:
            out.append(f"kernel profile not taken: {self.profiling.reason}")
        return out

    def describe(self) -> dict:
        out = {}
        if self.count:
            out["kernel_events"] = {"enabled": False, "reason": self.reason} if self.reason else {
                "enabled": True, "method": "perf_event_open counting per task (the runner's thread, inherited by "
                "the threads it starts; a tracker's kernel threads on their own pid); columns kev.<phase>.<event>",
                "trackers": self.trackers}
        if self.profiling:
            out["kernel_profile"] = self.profiling.describe()
        return out
