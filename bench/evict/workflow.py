"""The VMM eviction workflow, with a byte-exact integrity check (issue 7, items 2 and 3).

A "VMM" thread evicts the cold pages of guest memory while "vCPU" threads keep reading and
writing it (``workloads.integrity``: every page carries its index, a sequence number and a
checksum; the vCPUs keep their own record). Every round::

    observe   the variant's detector over an observation window -> hot set
    freeze    switch to synchronous interception (blocking variants; before the scan)
    decide    cold = resident pages not in the hot set, as maximal runs of pages
    write out pwrite(store, view + off) per run: a second memfd (default) or a file
    hold      optional extra time before the drop (widens the eviction window)
    drop      fallocate(PUNCH_HOLE|KEEP_SIZE) on the memfd (shmem) / MADV_DONTNEED (anon)
    release   end interception, wake blocked vCPUs; they refault: MISSING -> UFFDIO_COPY

The VMM writes out through an unregistered view: a second mapping of the arena's memfd
(shmem, the documented two-mapping design), or the vCPUs' own mapping (anon: readable
while write-protected; RWP on anon has no such view and is not offered). A compiled fault
handler (``bench.evict._core``) serves the userfaultfd; every vCPU access runs in nogil
code. Variants (``bench.evict.variants``, exact ioctl sequences there and in
``--list``): ``rwp-sync`` (7.3, blocks reads and writes), ``uffd-wp`` (blocks writes only),
``shmem-minor`` (MINOR faults block reads and writes), ``racy`` (no interception; must
lose data) and ``none`` (decides, evicts nothing: the stall floor of this machine). A
variant whose mechanism this kernel lacks is skipped with the probe's reason. With
``rescue``, pages the handler saw faulting inside the window are kept rather than evicted
(what only an interception that sees reads can do for reads); the default is the
documented workflow, which evicts them anyway and lets them refault.

After the last round and one more interval (to see its refaults) the vCPUs stop, every
evicted page is copied back, and every page is verified against the record.

Measured per (variant, round) -- one dict per row, pandas-friendly (attribution rules in
``bench.evict._stats``); every row also carries the parameters and the run-level columns:
  hot/cold/evicted/rescued_pages the decision, and what was dropped
  evicted_per_s                  evicted pages / (window - hold)
  bytes_written, runs            write-out volume and the cold runs
  uffd_ioctls                    interception ioctls the VMM issued this round (arm included):
                                 rwp-sync 4, uffd-wp 2 per run, shmem-minor 1 (WAKE)
  freeze/scan/intercept/write/drop/release_ns   the phases of the window
  window_ns                      the eviction window: end of observation -> release done
  window_touched_pages           cold pages the vCPUs touched inside the window (their own
                                 record: exact), split into _read_ / _write_ pages
  window_seen_pages              those the handler saw as blocked faults (reads are invisible
                                 to uffd-wp, everything to racy)
  blocked_ns_sum / _max          time those faults waited, handler read -> release
  refaults, refault_frac         evicted pages fetched back before the next round's freeze:
                                 wrong cold guesses; refault_service_p50/max_ns: COPY time
  tracking_faults                MINOR faults the handler resolved to track (shmem-minor)
  lat_p50/p99/max_ns             vCPU batch latency (``batch`` accesses) over the round;
  win_lat_max_ns, win_batches    ... and of the batches overlapping the window
  per run: lost/torn/misplaced/zeroed/ahead_pages, lost_writes, stale_reads, verdict,
  accesses, restored_pages, run_lat_p50/p99/max_ns, handler_errors/retries, log_lost,
  vcpu_affinity/handler_affinity (the CPUs those threads were allowed while running)
  placement (bench.fault_path; placement_requested: as asked, auto included), vcpu_cpus and
  handler_cpus (its CPUs, None: not pinned)
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from bench import clock, fault_path, interrupts
from bench.evict import _core as core
from bench.evict._stats import pct, round_rows, summarize
from bench.evict.variants import UFFD_TRACKERS, VARIANTS, Variant
from bench.arena import Arena, backing_unavailable, parse_size
from bench.errors import HotbenchError
from bench.kernel import libc, pagemap, uffd, uffd_server

__all__ = ["EvictParams", "EvictResult", "VARIANTS", "variant_names", "unavailable", "detector_for", "placement_of",
           "run", "run_matrix", "summarize"]

LOG_SLOTS = 1 << 18      # handler log entries per run (refaults and blocked faults)


@dataclass(frozen=True)
class EvictParams:
    """One eviction run's parameters (sizes in bytes or '32M'; times in seconds)."""

    size: int | str = "32M"
    backing: str = "shmem"
    threads: int = 2
    rounds: int = 4
    interval: float = 0.1          # observation window
    hold: float = 0.0              # extra time between write-out and drop
    rescue: bool = False           # keep pages the handler saw touched in the window
    detector: str = "auto"         # tracker for uffd-wp/racy: auto = shmem-zap (shmem), mprotect (anon)
    hot_frac: float = 0.25
    hot_weight: float = 0.99
    write_ratio: float = 0.5
    batch: int = 256               # accesses per timed vCPU batch
    words_per_write: int = 8
    seed: int = 1
    store: str | None = None       # directory for the store file; None = a second memfd
    placement: str = "auto"        # CPUs of the vCPU threads and the fault handler (bench.fault_path)

    def normalized(self) -> EvictParams:
        return replace(self, size=parse_size(self.size))


@dataclass
class EvictResult:
    variant: str
    params: EvictParams
    status: str                                  # "ok" or "skipped: reason"
    rows: list[dict] = field(default_factory=list)
    verdict: object = None                       # workloads.integrity.Verdict
    latencies: np.ndarray | None = None          # every vCPU batch, ns
    starts: np.ndarray | None = None             # their start times (CLOCK_MONOTONIC ns)
    faults: np.ndarray | None = None             # handler log: t_read, t_done, page, kind|flags<<8
    timeline: list[dict] = field(default_factory=list)


def variant_names() -> list[str]:
    return list(VARIANTS)


def _variant(name: str) -> type[Variant]:
    if name not in VARIANTS:
        raise HotbenchError(f"unknown eviction variant {name!r}; choose from {', '.join(VARIANTS)}")
    return VARIANTS[name]


def detector_for(variant: str, params: EvictParams = EvictParams()) -> str:
    cls = _variant(variant)
    if cls.builtin_detector:
        return cls.builtin_detector
    if params.detector != "auto":
        return params.detector
    return "shmem-zap" if params.backing == "shmem" else "mprotect"


def unavailable(variant: str, params: EvictParams = EvictParams()) -> str | None:
    """None when *variant* can run here with *params*, else the one-line reason (reads only)."""
    from bench import trackers

    cls = _variant(variant)
    if params.backing not in cls.backings:
        return f"{variant} needs {' or '.join(cls.backings)} memory, not {params.backing}" + (
            " (anonymous memory has no unregistered second view for the VMM's write-out)" if variant == "rwp-sync"
            else "")
    if cls.mechanism is not None:
        verdict = trackers.probe(cls.mechanism)
        if not verdict.available:
            return verdict.reason
    reason = backing_unavailable(params.backing, parse_size(params.size))
    if reason:
        return reason
    try:
        granted = uffd.api_features().features
    except OSError as e:
        return f"no userfaultfd: {e}"
    need = cls.features(params.backing)
    if granted & need != need:
        return f"UFFDIO_API lacks features {need & ~granted:#x} that {variant} needs (kernel has {granted:#x})"
    if cls.builtin_detector:
        return None
    name = detector_for(variant, params)
    try:
        tracker = trackers.get(name)
    except HotbenchError as e:
        return str(e)
    if tracker.granularity != "page":
        return f"detector {name} is not page-granular ({tracker.granularity})"
    if tracker.mechanism in UFFD_TRACKERS:
        return f"detector {name} registers the arena with its own userfaultfd, which the eviction owns"
    return tracker.unavailable(params.backing)


class _Ctx:
    """Everything one run holds. The driver releases it in an order that never strands a vCPU:
    handler stopped, then the userfaultfd closed (which wakes any blocked thread), then the
    vCPUs joined, and only then the memory unmapped."""

    def __init__(self, cls: type[Variant], params: EvictParams, placement: fault_path.Placement):
        self.cls, self.params, self.placement = cls, params, placement
        self.arena: Arena | None = None
        self.io_addr = 0
        self._io_mapped = False
        self.store_fd = -1
        self.store_addr = 0
        self.uffd: uffd.Userfaultfd | None = None
        self.range_ioctls = 0
        self.scanner: pagemap.Scanner | None = None
        self.detector = None
        self.cmd_fd = self.ack_fd = -1
        self._handler: threading.Thread | None = None
        self.ctl = np.zeros(core.CTL_SLOTS, np.int64)
        self.log = np.zeros((LOG_SLOTS, 4), np.int64)
        self.resident: np.ndarray | None = None
        self.touched: np.ndarray | None = None

    def open(self) -> None:
        from bench import trackers

        p, size = self.params, self.params.size
        self.arena = Arena(size, p.backing)
        a = self.arena
        prot = libc.PROT_READ | libc.PROT_WRITE
        if p.backing == "shmem":  # the VMM's own view: a second, never registered mapping of the memfd
            self.io_addr = libc.mmap(size, prot, libc.MAP_SHARED, a.fd)
            self._io_mapped = True
            libc.madvise(self.io_addr, size, libc.MADV_NOHUGEPAGE)
        else:
            self.io_addr = a.addr
        if p.store:
            self.store_fd = os.open(p.store, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
        else:
            self.store_fd = libc.memfd_create("hotbench-evict-store", libc.MFD_CLOEXEC)
        os.ftruncate(self.store_fd, size)
        self.store_addr = libc.mmap(size, libc.PROT_READ, libc.MAP_SHARED, self.store_fd)
        self.resident = np.ones(a.npages, np.uint8)
        self.touched = np.zeros(a.npages, np.uint8)
        self.scanner = pagemap.Scanner()
        self.uffd = uffd.Userfaultfd(self.cls.features(p.backing))
        self.range_ioctls = self.uffd.register(a.addr, size, self.cls.register_mode(p.backing))
        self.cmd_fd = os.eventfd(0, os.EFD_CLOEXEC)
        self.ack_fd = os.eventfd(0, os.EFD_CLOEXEC)
        args = (self.uffd.fd, self.cmd_fd, self.ack_fd, a.addr, a.npages, self.store_addr, self.ctl,
                self.resident, self.touched, self.log)
        self._handler = uffd_server.start_server_thread(lambda: core.serve(*args), "hotbench-evict-handler",
                                                        self.placement.server)
        if not self.cls.builtin_detector:
            self.detector = trackers.get(detector_for(self.cls.name, p))()
            self.detector.start(a)

    def command(self, mode: int) -> None:
        """Switch the handler's mode and wait until it has (every later message sees the new mode)."""
        self.ctl[core.C_CMD] = mode
        os.eventfd_write(self.cmd_fd, 1)
        if not select.select([self.ack_fd], [], [], 60)[0]:
            raise HotbenchError("the fault handler did not acknowledge a mode change within 60 s")
        os.eventfd_read(self.ack_fd)

    @property
    def handler_id(self) -> int:
        return self._handler.native_id

    def handler_running(self) -> bool:
        return self._handler is not None and self._handler.is_alive()

    def stop_handler(self) -> None:
        if self.handler_running():
            self.command(core.STOP)
            self._handler.join()
        self._handler = None

    def restore(self) -> int:
        done = core.restore(self.uffd.fd, self.arena.addr, self.store_addr, self.resident)
        if done < 0:
            raise HotbenchError(f"UFFDIO_COPY of evicted page {-done - 1} back from the store failed")
        return int(done)

    def stop_detector(self) -> None:
        if self.detector is not None:
            self.detector.stop()
            self.detector = None

    def close_uffd(self) -> None:
        if self.uffd is not None:
            self.uffd.close()  # unregisters the arena: wakes any blocked vCPU, drops every protection
            self.uffd = None

    def close_memory(self) -> None:
        if self.scanner is not None:
            self.scanner.close()
            self.scanner = None
        if self.store_addr:
            libc.munmap(self.store_addr, self.params.size)
            self.store_addr = 0
        if self.store_fd >= 0:
            os.close(self.store_fd)
            self.store_fd = -1
        if self._io_mapped:
            libc.munmap(self.io_addr, self.params.size)
            self._io_mapped = False
        self.io_addr = 0
        for fd in (self.cmd_fd, self.ack_fd):
            if fd >= 0:
                os.close(fd)
        self.cmd_fd = self.ack_fd = -1
        if self.arena is not None:
            self.arena.close()
            self.arena = None


def _check_drop(ctx: _Ctx, out: np.ndarray, runs: np.ndarray) -> None:
    if out[2]:
        first, count = (int(x) for x in runs[out[2] - 1])
        raise HotbenchError(f"dropping pages {first}..{first + count - 1} failed "
                            f"({'fallocate(PUNCH_HOLE)' if ctx.params.backing == 'shmem' else 'MADV_DONTNEED'})")


def _round(ctx: _Ctx, ops: Variant, workload, r: int) -> dict:
    p = ctx.params
    t = {}
    ops.ioctls = 0
    t["arm"] = time.monotonic_ns()
    minor0 = int(ctx.ctl[core.C_MINOR])
    ops.arm()
    time.sleep(p.interval)
    ctx.touched[:] = 0
    reads0, writes0 = workload.reads.copy(), workload.writes.copy()
    t["freeze"] = time.monotonic_ns()
    ops.freeze()
    t["frozen"] = time.monotonic_ns()
    resident = ctx.resident.astype(bool)  # before the scan: a page refetched after it is not cold
    hot = ops.scan()
    cold = resident & ~hot
    runs = core.runs_of(cold)
    t["decided"] = time.monotonic_ns()
    ops.intercept(runs)
    t["intercepted"] = time.monotonic_ns()
    if not ops.evicts:  # the "none" baseline: decide, then leave everything in place
        runs = runs[:0]
    nbytes = core.write_out(runs, ctx.io_addr, ctx.store_fd)
    if nbytes < 0:
        raise HotbenchError(f"pwrite of cold run {-nbytes - 1} to the store failed")
    t["written"] = time.monotonic_ns()
    if p.hold:
        time.sleep(p.hold)
    t["held"] = time.monotonic_ns()
    kept = np.zeros(cold.size, np.uint8)
    out = np.zeros(3, np.int64)
    core.drop(runs, ctx.arena.fd, ctx.arena.addr, p.backing == "shmem", ctx.resident, ctx.touched, p.rescue,
              kept, out)
    _check_drop(ctx, out, runs)
    t["dropped"] = time.monotonic_ns()
    ops.release(runs, kept.astype(bool))
    t["resumed"] = time.monotonic_ns()
    touched_r = cold & (workload.reads != reads0)
    touched_w = cold & (workload.writes != writes0)
    evicted = cold & ~kept.astype(bool) if ops.evicts else np.zeros_like(cold)
    return {"round": r, "t": t, "hot": hot, "cold": cold, "evicted": evicted,
            "kept": int(kept.sum()), "touched_r": touched_r, "touched_w": touched_w, "runs": len(runs),
            "bytes": int(nbytes), "drop_calls": int(out[1]), "ioctls": ops.ioctls, "minor0": minor0}


def placement_of(params: EvictParams) -> fault_path.Placement:
    """Where the vCPU threads and the fault handler run: ``params.placement`` on this machine
    (auto: both on one CPU for one vCPU thread, else unpinned; bench.fault_path.resolve)."""
    try:
        return fault_path.resolve(params.placement, params.threads)
    except ValueError as e:
        raise HotbenchError(f"placement {params.placement}: {e}") from None


def _cpu_list(cpus: set[int] | None) -> str | None:
    return None if cpus is None else ",".join(map(str, sorted(cpus)))


def _base_row(variant: str, params: EvictParams, repeat: int, placement: fault_path.Placement) -> dict:
    cls = _variant(variant)
    d = asdict(params)
    d["size_bytes"] = parse_size(d.pop("size"))
    d["interval_s"] = d.pop("interval")
    d["hold_ms"] = d.pop("hold") * 1e3
    d.pop("detector")
    d.update(placement_requested=d.pop("placement"), placement=placement.name,
             vcpu_cpus=_cpu_list(placement.toucher), handler_cpus=_cpu_list(placement.server))
    return {"variant": variant, "blocks": cls.blocks, "detector": detector_for(variant, params), "repeat": repeat,
            **d, "seed": params.seed + repeat, **clock.row_fields()}


def _affinity(workload, ctx: _Ctx) -> dict:
    """The CPUs the vCPU threads and the handler were allowed while running (what the placement did)."""
    vcpus = set().union(*(os.sched_getaffinity(tid) for tid in workload.thread_ids))
    return {"vcpu_affinity": _cpu_list(vcpus), "handler_affinity": _cpu_list(os.sched_getaffinity(ctx.handler_id))}


def run(variant: str, params: EvictParams = EvictParams(), *, repeat: int = 0) -> EvictResult:
    """One eviction run of *variant*: ``params.rounds`` rows, or one "skipped: reason" row.

    SIGINT/SIGTERM/SIGHUP (``bench.interrupts``) end it after the round in flight: the vCPUs
    are stopped and the userfaultfd closed before any memory is unmapped, then
    ``Interrupted`` propagates."""
    with interrupts.deferred("finishing the current eviction round"):
        return _run(variant, params, repeat)


def _run(variant: str, params: EvictParams, repeat: int) -> EvictResult:
    from workloads.integrity import IntegrityWorkload, page_array

    cls = _variant(variant)
    params = params.normalized()
    placement = placement_of(params)
    base = _base_row(variant, params, repeat, placement)
    reason = unavailable(variant, params)
    if reason:
        status = f"skipped: {reason}"
        return EvictResult(variant, params, status, rows=[{**base, "round": None, "status": status}])
    if params.rounds < 1 or params.interval <= 0 or params.hold < 0:
        raise HotbenchError("rounds must be >= 1, interval > 0 and hold >= 0")
    npages = params.size // core.PAGE
    workload = IntegrityWorkload(npages, threads=params.threads, seed=params.seed + repeat,
                                 hot_frac=params.hot_frac, hot_weight=params.hot_weight,
                                 write_ratio=params.write_ratio, batch=params.batch,
                                 words_per_write=params.words_per_write)
    workload.warmup()
    core.warmup()
    planned = params.rounds * (params.interval + params.hold + 0.05) + params.interval
    slots = int(min(max(planned * 1_000_000, 1 << 18), 1 << 21))  # twice the plan at 2 us per batch
    ctx = _Ctx(cls, params, placement)
    ops = cls(ctx)
    started = False
    try:
        ctx.open()
        ops.start()
        workload.init(page_array(ctx.io_addr, params.size))
        with fault_path.pinned(placement):  # the vCPU threads inherit the toucher CPUs
            workload.start(page_array(ctx.arena.addr, params.size), seconds=planned * 20 + 600, slots=slots)
        started = True
        if not workload.wait_running(timeout=600):
            raise HotbenchError("the vCPU threads made no access within 600 s of starting")
        rounds = []
        for r in range(params.rounds):
            interrupts.check()  # a safe point: the finally below stops the vCPUs before unmapping
            rounds.append(_round(ctx, ops, workload, r))
        time.sleep(params.interval)  # the last round's refaults get the same horizon as the others
        affinity = _affinity(workload, ctx)
        t_end = time.monotonic_ns()
        if not workload.stop(timeout=120):
            raise HotbenchError("a vCPU thread is still blocked in a fault 120 s after the run ended")
        started = False
        minor_end = int(ctx.ctl[core.C_MINOR])
        ops.stop()
        ctx.stop_detector()
        ctx.stop_handler()        # joined: its last COPY's resident mark is in, nothing races the restore
        restored = ctx.restore()
        ctx.close_uffd()
        verdict = workload.verify(page_array(ctx.io_addr, params.size))
        log = ctx.log[: int(ctx.ctl[core.C_LOG])].copy()
        lat, starts = workload.latencies(), workload.starts()
        accesses = int(workload.reads.sum() + workload.writes.sum())
        run_p50, run_p99, run_max = pct(lat)
        per_run = {**verdict.as_dict(), "accesses": accesses, "restored_pages": restored,
                   "run_lat_p50_ns": run_p50, "run_lat_p99_ns": run_p99, "run_lat_max_ns": run_max,
                   "handler_errors": int(ctx.ctl[core.C_ERRORS]), "handler_retries": int(ctx.ctl[core.C_RETRY]),
                   "handler_last_error": int(ctx.ctl[core.C_LAST_ERR]),
                   "log_lost": int(ctx.ctl[core.C_LOG_LOST]), "lat_truncated": workload.batches > lat.size,
                   "workload_version": workload.describe()["workload_version"], **affinity, "status": "ok"}
        rows = [{**base, **row, **per_run} for row in round_rows(rounds, t_end, lat, starts, log, minor_end)]
        timeline = [{"round": rd["round"], **rd["t"]} for rd in rounds]
        return EvictResult(variant, params, "ok", rows, verdict, lat, starts, log, timeline)
    finally:
        if started:
            workload.request_stop()
        with contextlib.suppress(Exception):
            ops.stop()
        ctx.stop_handler()
        ctx.close_uffd()          # wakes any vCPU still blocked
        ctx.stop_detector()
        if started and not workload.stop(timeout=60):
            raise HotbenchError("vCPU threads did not stop; leaving the arena mapped")
        ctx.close_memory()


def run_matrix(variants: list[str] | None = None, params: EvictParams = EvictParams(), repeats: int = 1,
               progress=None) -> list[dict]:
    """Every variant x repeat (seed + repeat); rows of all runs, skipped variants as one row each."""
    rows: list[dict] = []
    for name in variants or variant_names():
        for rep in range(repeats):
            interrupts.check()
            result = run(name, params, repeat=rep)
            rows.extend(result.rows)
            if progress:
                progress(result)
            if result.status != "ok":
                break
    return rows
