"""The tracker contract: one class per mechanism, behind start / arm / collect / stop.

A tracker's identity (name, mechanism, granularity, what it sees, backings) is class
attributes, readable without building one. ``stop()`` must undo everything the
tracker did — registrations, protections, knobs, kdamonds, cgroups, threads — and
be safe to call twice, after a failed ``start`` and from the runner's
``finally``/signal path. Trackers only observe: the runner times them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from bench.arena import Arena

PAGE, REGION, AGGREGATE = "page", "region", "aggregate"
READS_AND_WRITES, WRITES = "reads+writes", "writes"

region_dtype = np.dtype([("start", "<i8"), ("end", "<i8"), ("nr_accesses", "<i8")])  # in base pages


class TrackerUnavailable(Exception):
    """Raised at import or construction when a tracker cannot work here; the message is the reason."""


@dataclass
class Observation:
    """What a tracker saw in one interval, at its granularity.

    page:      ``accessed`` is bool[arena.npages]; ``read``/``written`` when it can tell them apart
    region:    ``regions`` (``region_dtype``, base-page units) with per-region access counts
    aggregate: ``wss_pages`` only
    ``status`` is "ok" or a one-line reason the interval is degraded (the runner records it).
    ``extra`` holds tracker-specific counters (e.g. pages mapped by fault-around).
    """

    accessed: np.ndarray | None = None
    read: np.ndarray | None = None
    written: np.ndarray | None = None
    regions: np.ndarray | None = None
    wss_pages: int | None = None
    status: str = "ok"
    extra: dict = field(default_factory=dict)


class Tracker:
    name: ClassVar[str]
    mechanism: ClassVar[str]  # key in bench.kernel.probe.MECHANISMS
    granularity: ClassVar[str] = PAGE
    sees: ClassVar[str] = READS_AND_WRITES
    backings: ClassVar[tuple[str, ...]] = ("anon", "shmem", "thp", "hugetlb")
    summary: ClassVar[str] = ""
    # True when the workload's accesses wait for a server thread of the tracker (synchronous
    # userfaultfd): the runner then places that thread (option server_cpus) and the workload.
    serves_faults: ClassVar[bool] = False
    # Global kernel state start() changes for the run ("" for none): such a run holds the run
    # lock exclusively (bench.runlock), and every change is journaled (bench.journal).
    global_state: ClassVar[str] = ""
    # The kernel events this mechanism's cost is made of (bench.kernel.perf_event Tracepoint /
    # Kprobe), counted per phase by 'hotbench run --kernel-events' beside bench.attribution.COMMON.
    kernel_events: ClassVar[tuple] = ()

    @classmethod
    def unavailable(cls, backing: str | None = None) -> str | None:
        """None when this tracker can run here (on *backing*), else the one-line reason. Reads only."""
        from bench.kernel.probe import probe

        result = probe(cls.mechanism)
        if not result.available:
            return result.reason
        if backing is not None and backing not in cls.backings:
            return f"{cls.name} does not work on {backing} memory (only {', '.join(cls.backings)})"
        return None

    def __init__(self, **options):
        self.options = options
        self.arena: Arena | None = None

    def start(self, arena: Arena) -> None:
        self.arena = arena

    def arm(self) -> None:
        raise NotImplementedError

    def collect(self) -> Observation:
        raise NotImplementedError

    def stop(self) -> None:
        self.arena = None

    def helper_threads(self) -> dict[str, int]:
        """Kernel threads doing this tracker's work while it runs (name -> pid), e.g. a kdamond."""
        return {}

    def describe(self) -> dict:
        return {"name": self.name, "mechanism": self.mechanism, "granularity": self.granularity,
                "sees": self.sees, "options": self.options}
