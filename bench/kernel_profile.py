"""``hotbench run --kernel-profile PHASES``: the kernel functions a tracker phase spends its time in.

Around each profiled phase of each lockstep interval the ftrace function profiler
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
"""

from __future__ import annotations

import contextlib

from bench.kernel import tracefs

__all__ = ["TOP", "Profiling"]

TOP = 40  # functions kept per profiled phase and interval, by time


class Profiling:
    """The function profiler for one run, around the phases named in *phases*."""

    def __init__(self, phases: tuple[str, ...]):
        self.phases = tuple(phases)
        self.reason: str | None = None
        self.rows: list[dict] = []
        self._stack = contextlib.ExitStack()
        self._profiler: tracefs.FunctionProfiler | None = None

    def __enter__(self) -> Profiling:
        try:
            root = self._stack.enter_context(tracefs.mounted())
        except OSError as e:
            self.reason = f"cannot mount tracefs: {e.strerror}"
            return self
        self.reason = tracefs.profiler_reason(root)
        if self.reason is None:
            self._profiler = self._stack.enter_context(tracefs.FunctionProfiler(root))
        return self

    def __exit__(self, *exc) -> None:
        self._profiler = None
        self._stack.__exit__(*exc)

    def wants(self, phase: str) -> bool:
        return self._profiler is not None and phase in self.phases

    @contextlib.contextmanager
    def phase(self, name: str, key: dict):
        """Profile the block as phase *name* of the interval *key* identifies (when asked to)."""
        if not self.wants(name):
            yield
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
        if self.reason:
            return {"enabled": False, "phases": list(self.phases), "reason": self.reason}
        return {"enabled": True, "phases": list(self.phases), "top": TOP,
                "method": "ftrace function profiler, every task on every CPU, time including callees; timings of "
                          "profiled phases include the profiler's own cost"}
