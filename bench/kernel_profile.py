"""``hotbench run --kernel-profile PHASES``: the kernel functions a tracker phase spends its time in.

Two methods, the first the kernel has: the ftrace function profiler (exact calls and time per
function, every CPU), else sampling through perf_event_open (``Sampling``, below). The
manifest's ``kernel_profile`` says which one ran and why the other did not.

**Function profiler.** Around each profiled phase of each lockstep interval the ftrace function profiler
(``bench.kernel.tracefs.FunctionProfiler``; ``CONFIG_FUNCTION_PROFILER``: none of the cached
kernels has it, docs/kernel-work.md says what a build needs) is switched on — which resets its tables — and off again, and its per-CPU
tables are summed: per kernel function, the calls (hits) and the time spent in it *including
its callees* (function_graph's default ``graph-time``), on the tracing clock. In a QEMU icount
guest that clock counts guest instructions, so a function's time over the phase's is its share
of the phase's instructions; natively it is a share of the phase's time.

What to know when reading one:

- The profiler sees every task on every CPU (it has no pid filter): in a one-vCPU guest, the
  phase and whatever kernel thread runs inside it; on several CPUs also their other work.
- Tracing every function call costs far more than the calls themselves, so the timings of a
  profiled run are not the phase's cost; shares are of the profiled phase. Compare costs from
  runs without ``--kernel-profile``.
- Switching the profiler on and off (a text patch of every traceable function) and reading its
  tables happen outside the timed phase.

The top ``TOP`` functions by time of each profiled phase and interval become rows of
``profile.parquet`` (``bench.results.write_profile``), keyed like the samples (``cell``,
``interval``) plus ``phase``. The profiler is always left off: on every exit path, through
``sysfs.Knobs``, and tracefs is unmounted again when hotbench mounted it.

**Sampling** (``perf_event.Sampler``): a ``cpu-clock`` event on the runner's thread, enabled
only inside the phase, samples the interrupted instruction and its kernel callchain every
``PERIOD_NS`` of the thread's run time; addresses become functions through ``/proc/kallsyms``.
Under QEMU's icount the guest's clock counts instructions, so a sample falls every
``PERIOD_NS`` guest instructions: the counts are an instruction profile of the phase (natively,
a time profile). Per phase and interval the rows are the functions in the top ``TOP`` by
*self* samples (the sampled instruction was in it) or by *inclusive* samples (it was anywhere in
the callchain), with both counts and the phase's total samples (user-mode samples are one row,
``[user]``, so the total is the whole thread: kernel and user). A tracker may name sets of
functions (``profile_sets``, e.g. idle page tracking's rmap walk): a set's row counts the
samples whose callchain holds any of them, each sample once. Sampling sees only the runner's
thread (not threads it starts), samples are taken only where interrupts are enabled (work
under a spinlock taken with interrupts off is charged to where they come back on), and each
sample's interrupt and unwinding lengthen the phase: shares are of the profiled phase's own
samples, and costs come from runs without ``--kernel-profile``.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

from bench.kernel import kallsyms, procfs, tracefs
from bench.kernel import perf_event as pe

__all__ = ["TOP", "PERIOD_NS", "USER", "Profiling", "Sampling", "summarize"]

TOP = 40  # functions kept per profiled phase and interval, by time (or by self and by inclusive samples)
# One sample per 25 µs of the thread's run time: 40 kHz natively, one per 25,000 guest
# instructions under icount (shift 0) — thousands of samples in a 100 M-instruction phase, while
# the sample interrupt's own work stays a small part of each period.
PERIOD_NS = 25_000
RING_PAGES = 2048  # 8 MiB of samples per thread before the kernel drops any (counted as lost)
USER = "[user]"  # the row of samples taken in user mode


def summarize(samples: pe.Samples, symbols: kallsyms.Symbols, sets: dict[str, tuple[str, ...]],
              top: int = TOP) -> list[dict]:
    """Rows of one phase's samples: the top functions by self and by inclusive samples, the
    ``[user]`` row, and one row per set in *sets*; each with ``self_samples``, ``samples``
    (inclusive), ``phase_samples`` and ``lost``."""
    total = len(samples)
    base = {"phase_samples": total, "lost": samples.lost}
    kernel = np.flatnonzero(samples.kernel)
    sampled = symbols.lookup(samples.ip[kernel])  # the function each kernel sample's IP was in
    # (sample, function) pairs from every callchain entry and the sampled IP, each pair once
    owner = np.concatenate([np.repeat(np.arange(total), np.diff(samples.starts)), kernel])
    ids = np.concatenate([symbols.lookup(samples.chain), sampled])
    width = len(symbols.names) + 1  # id -1 (no symbol) shifted to 0
    pairs = np.unique(owner * width + ids + 1)
    pair_sample, pair_id = pairs // width, pairs % width - 1
    inclusive = dict(zip(*np.unique(pair_id, return_counts=True)))
    own = dict(zip(*np.unique(sampled, return_counts=True)))
    by_inclusive = sorted(inclusive, key=lambda i: -inclusive[i])[:top]
    by_self = sorted(own, key=lambda i: -own[i])[:top]
    rows = [{**base, "kind": "function", "function": symbols.name(int(i)), "self_samples": int(own.get(i, 0)),
             "samples": int(inclusive[i])} for i in dict.fromkeys(by_inclusive + by_self)]
    users = int(total - len(kernel))
    if users:
        rows.append({**base, "kind": "function", "function": USER, "self_samples": users, "samples": users})
    for name, members in sets.items():
        member_ids = symbols.ids_of(members)
        rows.append({**base, "kind": "set", "function": name, "members": ",".join(members),
                     "self_samples": int(np.isin(sampled, member_ids).sum()),
                     "samples": len(np.unique(pair_sample[np.isin(pair_id, member_ids)]))})
    rows.sort(key=lambda r: -r["samples"])
    return [{**row, "rank": rank} for rank, row in enumerate(rows)]


class Sampling:
    """cpu-clock sampling of whichever thread runs a phase (one ``Sampler`` per thread, opened
    at its first phase), symbolized through /proc/kallsyms."""

    def __init__(self, symbols: kallsyms.Symbols, period_ns: int = PERIOD_NS):
        self.symbols = symbols
        self.period_ns = period_ns
        self._samplers: dict[int, pe.Sampler] = {}

    @classmethod
    def open(cls) -> tuple[Sampling | None, str | None]:
        """(a sampler, None), or (None, why this kernel or process cannot sample kernel IPs)."""
        symbols, why = kallsyms.Symbols.load()
        if why:
            return None, why
        sampling = cls(symbols)
        try:
            sampling._sampler()
        except OSError as e:
            paranoid = procfs.read_text(pe.PERF_EVENT_PARANOID)
            return None, (f"{e.filename or 'perf_event_open'} failed: {e.strerror} (perf_event_paranoid is "
                          f"{paranoid}; sampling the kernel needs root or CAP_PERFMON, and no lockdown)")
        return sampling, None

    def _sampler(self) -> pe.Sampler:
        tid = threading.get_native_id()
        if tid not in self._samplers:
            self._samplers[tid] = pe.Sampler(self.period_ns, RING_PAGES)
        return self._samplers[tid]

    def start(self) -> None:
        sampler = self._sampler()
        sampler.take()  # anything left from an interrupted phase is not this one's
        sampler.enable()

    def stop(self, sets: dict[str, tuple[str, ...]]) -> list[dict]:
        sampler = self._sampler()
        sampler.disable()
        return summarize(sampler.take(), self.symbols, sets)

    def close(self) -> None:
        for sampler in self._samplers.values():
            sampler.close()
        self._samplers.clear()


class Profiling:
    """The kernel profile of one run, around the phases named in *phases*: the function
    profiler where the kernel has one, else sampling (``method`` says which; ``reason`` why
    neither, ``not_used`` why the function profiler was not)."""

    def __init__(self, phases: tuple[str, ...]):
        self.phases = tuple(phases)
        self.reason: str | None = None
        self.method: str | None = None
        self.not_used: dict[str, str] = {}
        self.rows: list[dict] = []
        self._stack = contextlib.ExitStack()
        self._profiler: tracefs.FunctionProfiler | None = None
        self._sampling: Sampling | None = None

    def __enter__(self) -> Profiling:
        why = self._open_function_profiler()
        if why is None:
            self.method = "function profiler"
            return self
        self.not_used["function profiler"] = why
        self._sampling, sampling_why = Sampling.open()
        if self._sampling is not None:
            self._stack.callback(self._sampling.close)
            self.method = "sampling"
        else:
            self.reason = f"{why}; sampling: {sampling_why}"
        return self

    def _open_function_profiler(self) -> str | None:
        try:
            root = self._stack.enter_context(tracefs.mounted())
        except OSError as e:
            return f"cannot mount tracefs: {e.strerror}"
        why = tracefs.profiler_reason(root)
        if why is None:
            self._profiler = self._stack.enter_context(tracefs.FunctionProfiler(root))
        return why

    def __exit__(self, *exc) -> None:
        self._profiler = self._sampling = None
        self._stack.__exit__(*exc)

    def wants(self, phase: str) -> bool:
        return (self._profiler is not None or self._sampling is not None) and phase in self.phases

    @contextlib.contextmanager
    def phase(self, name: str, key: dict, sets: dict[str, tuple[str, ...]] | None = None):
        """Profile the block as phase *name* of the interval *key* identifies (when asked to);
        *sets*: named groups of functions counted together (sampling only)."""
        if not self.wants(name):
            yield
            return
        if self._sampling is not None:
            self._sampling.start()
            try:
                yield
            finally:
                rows = self._sampling.stop(sets or {})
            self.rows += [{**key, "phase": name, **row} for row in rows]
            return
        self._profiler.start()
        try:
            yield
        finally:
            self._profiler.stop()
        lines = sorted(self._profiler.read(), key=lambda line: line.time_ns, reverse=True)[:TOP]
        self.rows += [{**key, "phase": name, "rank": rank, "function": line.function, "hits": line.hits,
                       "time_ns": line.time_ns} for rank, line in enumerate(lines)]

    def describe(self) -> dict:
        out = {"phases": list(self.phases), "not_used": dict(self.not_used)}
        if self.reason:
            return {"enabled": False, **out, "reason": self.reason}
        if self.method == "sampling":
            return {"enabled": True, **out, "top": TOP, "method": "sampling", "period_ns": PERIOD_NS,
                    "how": "perf_event_open cpu-clock samples of the runner's thread (IP and kernel callchain, "
                           "symbolized through /proc/kallsyms): under icount one sample per period_ns guest "
                           "instructions, natively per period_ns of run time; self and inclusive samples per "
                           "function, the phase's total samples (user mode as [user]); timings of profiled "
                           "phases include the sampling's own cost"}
        return {"enabled": True, **out, "top": TOP, "method": "function profiler",
                "how": "ftrace function profiler, every task on every CPU, time including callees; timings of "
                       "profiled phases include the profiler's own cost"}
