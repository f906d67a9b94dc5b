"""The tracker contract: one class per mechanism, behind start / arm / collect / stop.

A tracker's identity (name, mechanism, granularity, what it sees, backings) is class
attributes, readable without building one. ``stop()`` must undo everything the
tracker did — registrations, protections, knobs, kdamonds, cgroups, threads — and
be safe to call twice, after a failed ``start`` and from the runner's
``finally``/signal path. Trackers only observe: the runner times them.

Every other fact about the mechanism is a class attribute too — its probe, the kernel config
it needs, the raw primitive behind each phase, the interferences it accepts, its micro cases
and the state each phase's cost depends on, its plot style — and every table elsewhere
(``hotbench probe``, ``kernel list``, ``harness``, ``micro``, ``--interfere``, figures) is
derived from the registry (``bench.trackers``): adding a tracker touches its own file only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from bench.arena import Arena

if TYPE_CHECKING:
    from bench.kernel.probe import Probe

PAGE, REGION, AGGREGATE = "page", "region", "aggregate"
READS_AND_WRITES, WRITES = "reads+writes", "writes"

region_dtype = np.dtype([("start", "<i8"), ("end", "<i8"), ("nr_accesses", "<i8")])  # in base pages


@dataclass(frozen=True)
class RawPrimitive:
    """The bare kernel call one tracker phase is built on: ``hotbench harness`` times the phase
    against it on the same arena in the same state. *make(tracker, scanner)* gets the started
    tracker and a spare ``pagemap.Scanner`` and returns a callable doing only the primitive."""

    name: str
    make: Callable[[Tracker, object], Callable[[], object]]


# What a cost model's state_GiB counts (CostMatch.quantity; analysis._micro_match fits them).
REPORTED = "reported"  # pages this collect reported (tp + fp; smaps Referenced for the aggregate tracker)
BEFORE = "reported before"  # pages the previous collect of the cell reported: what this arm finds in
#                             state, since nothing runs in between (lockstep). At interval 0 every page:
#                             the arena was just populated (MADV_POPULATE_WRITE), so every page is present,
#                             young and referenced (smaps counts them all), and written for uffd-wp.
RUNS = "runs reported"  # separate runs of the pages this collect reported (a scattered page is a run of one)
# Which rows of a cell a cost model fits (CostMatch.rows)
ALL = "every interval"
FIRST = "interval 0 only"
LATER = "intervals after the first"


@dataclass(frozen=True)
class CostMatch:
    """How one phase's cost is predicted from micro cases (``analysis._micro_match`` fits it):
    ``cost_ms = c0 + a * memory_GiB + b * state_GiB [+ c * blocks_GiB]``, each slope predicted
    by the named micro case(s). ``tracker`` is filled in by the registry."""

    phase: str  # "arm" or "collect"
    backing: str  # the micro cases' backing: only sweep rows of this backing are fitted
    memory: str | None  # micro case with no page in state: predicts a
    state: str | None  # micro case with a share of the pages in state: predicts b; None: no state term
    quantity: str | None  # what state_GiB counts (REPORTED, BEFORE, RUNS); None: no state term
    blocks: str | None = None  # the 1 % case (state in every block): adds and predicts the block term c
    rows: str = ALL
    why: str = ""
    tracker: str = ""


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
    mechanism: ClassVar[str]  # a row of 'hotbench probe' (bench.trackers.probe_all)
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
    # Named sets of kernel functions whose samples 'run --kernel-profile' (sampling) counts
    # together, each sample once: e.g. {"rmap walk": mm_events.RMAP_WALK_FUNCTIONS}.
    profile_sets: ClassVar[dict[str, tuple[str, ...]]] = {}

    # ---- facts about the mechanism (read by the tables bench.trackers derives from the registry)
    # Its probe: a function of bench.kernel.probe (a plug-in's own elsewhere) returning a Probe.
    # Every tracker of one mechanism names the same one.
    kernel_probe: ClassVar[Callable[[], Probe]]
    # The kernel config options (without CONFIG_) the mechanism needs, all of them ('hotbench
    # kernel list', 'vm --require auto'); None when no kernel config enables it (never merged).
    kconfig: ClassVar[tuple[str, ...] | None] = None
    # Per phase: the RawPrimitive 'hotbench harness' holds it against, or why it has none.
    raw_primitives: ClassVar[dict[str, RawPrimitive | str]] = {}
    # The bench.fault_path round trip a fault-served tracker's cost per fault is held against
    # ('hotbench harness'), and the one of a synchronous mode that no lockstep run serves.
    fault_kind: ClassVar[str | None] = None
    sync_fault_kind: ClassVar[str | None] = None
    # Interference name -> None (checked: it means something beside this tracker) or why it is
    # refused. An interference checked per tracker (tlb-flush) is refused where not named.
    interferences: ClassVar[dict[str, str | None]] = {}
    # How each phase's cost follows the pages in state, predicted by micro cases (CostMatch).
    cost_model: ClassVar[tuple[CostMatch, ...]] = ()
    # Keys of Observation.extra that describe where the arena's pages lie physically, when the
    # phases' cost follows that placement (not only the page count): two boots, or two nights,
    # place pages differently, and their costs then differ for that reason (analysis.determinism).
    placement_extras: ClassVar[tuple[str, ...]] = ()
    # Plot style: (colour, marker); the colour an analysis.style.OKABE_ITO name or "#rrggbb".
    style: ClassVar[tuple[str, str] | None] = None
    # Position in 'hotbench probe' and in figure legends (plug-ins: after the built-ins).
    order: ClassVar[int] = 1000

    @classmethod
    def micro_cases(cls) -> list:
        """The pyperf micro-benchmarks of this mechanism's primitives (``bench.micro.kit.Case``)."""
        return []

    @classmethod
    def probe(cls) -> Probe:
        """The mechanism's verdict on this kernel, computed once per process. Reads only."""
        from bench.kernel.probe import verdict

        return verdict(cls.mechanism, cls.kernel_probe)

    @classmethod
    def unavailable(cls, backing: str | None = None) -> str | None:
        """None when this tracker can run here (on *backing*), else the one-line reason. Reads only."""
        result = cls.probe()
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
