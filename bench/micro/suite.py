"""``hotbench micro``: pyperf benchmarks of every hotness-tracking primitive the running kernel has.

Each primitive (``bench.micro.kit``) is one pyperf benchmark run by ``pyperf.Runner``:
worker processes, loop calibration, JSON that ``python -m pyperf compare_to`` reads.
Values are times, always positive:

  arm/...    seconds per GiB of arena for one arm of the whole arena
  scan/...   seconds per GiB of arena for one collect of the whole arena
  fault/...  seconds per 4 KiB page touched (``inner_loops`` = pages per loop); the THP
             variants touch every 4 KiB page of a THP-backed arena, so they compare with 4k

Each benchmark's metadata says what is timed (``hotbench_timed``) and its unit
(``hotbench_unit``); every run records the kernel release, ``accel`` (``HOTBENCH_ACCEL``,
"native" unless set by ``hotbench vm``; anything else is labelled not comparable to
native) and the THP mode. Accuracy numbers never go into these files.

Workers: the manager re-executes ``python -m bench.micro`` with pyperf's ``--worker``
options plus ours (``--size``, ``--fault-size`` resolved, and ``--micro-selected``: the exact
list the manager registered), so every worker registers the same benchmarks in the same
order without probing again, and only the one whose turn it is (``--worker-task``) builds
its arena — setup happens in that worker, outside the timed region. ``hotbench micro
ARGS`` and ``python -m bench.micro ARGS`` are the same program.

``--size`` takes a list (``--size 256M,1G,4G,16G``): each per-GiB case then runs once per arena
size, named ``CASE@SIZE`` (``arm/mprotect/1pct/4k@16G``), so that the analysis can fit its cost
against the size the way it fits a sweep's — slope per GiB plus a fixed cost — instead of
dividing one arena's time by its size, which folds the call's fixed cost and that size's cache
regime into the "per GiB" (mprotect(PROT_NONE) measured 5.0 ms/GiB at 256 MiB, 12.7 at 4 GiB and
9.3 at 16 GiB here). One size keeps the plain names, which the nightly suite compares. Arenas of 4 GiB and
more imply ``--loops 1``: pyperf calibrates loops on the timed call alone, but each call first
re-prepares its arena untimed, which at 16 GiB made one benchmark take minutes.

``--cold[=BYTES]`` (default: twice the last-level cache, from sysfs): pyperf repeats a primitive
back to back on the same arena, so its page tables and struct pages stay cache-warm, while a
tracker's arm and collect run after the workload has been through the caches. With --cold each
worker allocates a scratch buffer of BYTES once and writes one byte of each 64-byte line of it
immediately before every timed region of a case (each ``bench.micro.kit.timed``: after the case's
untimed preparation, so that cannot re-warm what the timed call walks), outside the timed
region. That costs ~0.1 s per call, so --cold implies ``--loops 1`` (each value is one call)
unless -l/--loops is given. Recorded as ``hotbench_cold_bytes`` (0: warm) in each benchmark.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import re
import sys
from pathlib import Path

from bench import __version__, clock, interrupts
from bench.arena import BASE_PAGE, HUGE_PAGE, size_token, parse_size
from bench.errors import HotbenchError, Interrupted
from bench.kernel import sysfs

__all__ = ["main", "plan", "cases", "select", "unavailable", "check_options", "GIB", "DEFAULT_SIZE", "FAST_SIZE",
           "DEFAULT_FAULT_SIZE", "FAST_FAULT_SIZE", "UNITS"]

GIB = 1 << 30
DEFAULT_SIZE, FAST_SIZE = GIB, 256 << 20  # arena of the per-GiB primitives
DEFAULT_FAULT_SIZE, FAST_FAULT_SIZE = 64 << 20, 16 << 20  # arena of the per-page fault costs
# pyperf's defaults (20 processes x 3 values) would spend most of the time starting workers:
# every value here runs in a fresh process on fresh memory anyway. --fast halves this (min 3).
PROCESSES, VALUES = 6, 3
# Environment the workers need (HOTBENCH_ACCEL, NUMBA_CACHE_DIR, NUMBA_CPU_NAME under 'hotbench vm'…);
# pyperf passes only PATH, HOME, PYTHONPATH and the locale by default.
WORKER_ENVIRON_PREFIXES = ("HOTBENCH_", "NUMBA_")
UNITS = {"GiB": "seconds per GiB of arena", "page": "seconds per 4 KiB page touched"}
CPU_CACHE = Path(sysfs.CPU0_CACHE)
# --cold writes one byte per cache line: a stride of 4 KiB touches one line per page, all in the
# same 1/64 of the cache sets, and evicts little (measured: smaps read stays warm)
COLD_STRIDE = 64
SINGLE_CALL_SIZE = 4 * GIB  # from this arena up, --loops 1 unless given (see the module docstring)


def _metadata() -> dict:
    from bench.kernel import procfs

    accel = os.environ.get("HOTBENCH_ACCEL", "native") or "native"
    return {
        "hotbench_version": __version__,
        "kernel_release": os.uname().release,
        "accel": accel,
        "hotbench_comparable": "native" if accel == "native" else f"not comparable to native (accel={accel})",
        # Under 'hotbench vm --icount' a "second" is 10**9 * 2**-shift guest instructions (bench/clock.py).
        "hotbench_clock": clock.current().kind,
        **({"hotbench_icount_shift": clock.current().shift} if clock.current().instructions else {}),
        "thp_enabled": procfs.thp_mode() or "absent",
    }


def _size(text: str) -> int:
    try:
        size = parse_size(text)
    except HotbenchError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if size <= 0 or size % HUGE_PAGE:
        raise argparse.ArgumentTypeError(f"{text!r}: use a positive multiple of 2M (THP arenas need whole huge pages)")
    return size


def _sizes(text: str) -> list[int]:
    """--size's value: one size or a comma-separated list (each a positive multiple of 2M), deduplicated."""
    sizes = [_size(part.strip()) for part in text.split(",") if part.strip()]
    if not sizes:
        raise argparse.ArgumentTypeError(f"{text!r}: give a size such as 1G or a list such as 256M,16G")
    return sorted(set(sizes))


def last_level_cache(root: Path = CPU_CACHE) -> int:
    """Bytes of cpu0's highest-level cache (sysfs index*/level and size), 0 when unknown."""
    best = (0, 0)
    for index in root.glob("index*"):
        try:
            level = int((index / "level").read_text())
            size = parse_size((index / "size").read_text().strip())
        except (OSError, ValueError, HotbenchError):
            continue
        best = max(best, (level, size))
    return best[1]


def _cold_size(text: str) -> int:
    """--cold's value: 'auto' (2 x the last-level cache) or a size such as 512M."""
    if text == "auto":
        llc = last_level_cache()
        if not llc:
            raise argparse.ArgumentTypeError(f"no cache size under {CPU_CACHE}: give --cold=BYTES (e.g. 512M)")
        return 2 * llc
    try:
        size = parse_size(text)
    except HotbenchError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if size < COLD_STRIDE:
        raise argparse.ArgumentTypeError(f"{text!r}: a cold scratch buffer needs at least {COLD_STRIDE} bytes")
    return size


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("hotbench micro options")
    group.add_argument("--bench", metavar="REGEX", help="only the benchmarks whose name matches REGEX (re.search)")
    group.add_argument("--size", type=_sizes, help=f"arena of the per-GiB arm and scan primitives (default "
                       f"{size_token(DEFAULT_SIZE)}, {size_token(FAST_SIZE)} with --fast); a list such as "
                       "256M,16G runs each per-GiB case at every size, named CASE@SIZE")
    group.add_argument("--fault-size", type=_size, help=f"arena of the per-page fault costs (default "
                       f"{size_token(DEFAULT_FAULT_SIZE)}, {size_token(FAST_FAULT_SIZE)} with --fast)")
    group.add_argument("--cold", nargs="?", const="auto", type=_cold_size, metavar="BYTES",
                       help="start every timed call cache-cold: write one byte per 64-byte line of a BYTES "
                       "scratch buffer (default 2 x the last-level cache) right before it, untimed; implies "
                       "--loops 1 unless -l/--loops is given")
    group.add_argument("--list", action="store_true", help="list every benchmark with its unit, or why it is "
                       "skipped on this kernel, and exit")
    group.add_argument("--micro-selected", help=argparse.SUPPRESS)  # manager -> worker: the registered names
    _help_layout(parser, group)


# pyperf options that only its manager and workers pass each other, or that compare Python
# interpreters: still accepted (the workers need them), left out of --help.
_PYPERF_INTERNAL = ("--worker", "--worker-task", "--pipe", "--in-process", "--calibrate-loops", "--recalibrate-loops",
                    "--calibrate-warmups", "--recalibrate-warmups", "--debug-single-value", "--python",
                    "--compare-to", "--python-names")


def _help_layout(parser: argparse.ArgumentParser, ours) -> None:
    """--help shows hotbench's options first, then pyperf's Runner options under their own heading."""
    parser.usage = ("%(prog)s [--bench REGEX] [--size S[,S...]] [--fault-size S] [--cold[=BYTES]] [--list] "
                    "[pyperf options: --fast, -o FILE.json, -p N, -n N, -l N, --affinity CPUS, ...]")
    for action in parser._actions:  # argparse has no public way to hide or regroup another's options
        if any(flag in _PYPERF_INTERNAL for flag in action.option_strings):
            action.help = argparse.SUPPRESS
    groups = parser._action_groups
    groups.remove(ours)
    groups.insert(0, ours)
    for group in groups:
        if group is not ours and group.title in ("options", "optional arguments"):
            group.title = "pyperf Runner options (python -m pyperf --help)"


def check_options(argv: list[str]) -> None:
    """Check hotbench's own options in *argv* (sizes, the --bench regex) without pyperf and
    without running anything; HotbenchError names the problem. pyperf's options are left to
    pyperf (experiments check their micro steps with this before any directory exists)."""
    class Parser(argparse.ArgumentParser):
        def error(self, message: str):
            raise HotbenchError(message)

    parser = Parser(prog="hotbench micro", add_help=False)
    _add_arguments(parser)
    args, _ = parser.parse_known_args(argv)
    select([], args.bench)  # compiles the regex


@functools.cache
def cases() -> list:
    """Every tracker's cases (``Tracker.micro_cases``, in listing order), then the plain-memory
    ones, in table order (``bench.micro.kit.ordered``)."""
    from bench import trackers
    from bench.micro import kit

    return kit.ordered([case for cls in trackers.in_order() for case in cls.micro_cases()] + kit.plain_cases())


def unavailable(case) -> str | None:
    """None when *case*'s primitive exists on the running kernel, else the one-line reason."""
    if case.mechanism is not None:
        from bench import trackers

        result = trackers.probe(case.mechanism)
        if not result.available:
            return f"{case.mechanism}: {result.reason}"
    return case.backing_unavailable()


def select(cases, pattern: str | None) -> tuple[list, list[tuple[str, str]]]:
    """(cases to run, [(name, reason)] of matching cases this kernel lacks), in table order."""
    try:
        regex = re.compile(pattern) if pattern else None
    except re.error as e:
        raise HotbenchError(f"bad --bench regex {pattern!r}: {e}") from None
    chosen, skipped = [], []
    for case in cases:
        if regex and not regex.search(case.name):
            continue
        reason = unavailable(case)
        if reason:
            skipped.append((case.name, reason))
        else:
            chosen.append(case)
    return chosen, skipped


class Scratch:
    """--cold's buffer, allocated (and faulted in) once per worker; ``evict()`` writes one byte per line."""

    def __init__(self, nbytes: int):
        import numpy as np

        self.buffer = np.ones(nbytes, np.uint8)
        self.lines = self.buffer[::COLD_STRIDE]
        self.evictions = 0

    def evict(self) -> None:
        self.lines += 1
        self.evictions += 1


_scratch: Scratch | None = None  # one per worker process, shared by its benchmarks


def _worker_scratch(nbytes: int) -> Scratch:
    global _scratch
    if _scratch is None or _scratch.buffer.size != nbytes:
        _scratch = None
        _scratch = Scratch(nbytes)
    return _scratch


class _Benchmark:
    """One case inside one process: built on the first call (so only in the worker that runs it)."""

    def __init__(self, case, size: int, cold_bytes: int = 0):
        import contextlib

        self.case, self.size, self.cold_bytes = case, size, cold_bytes
        self.stack = contextlib.ExitStack()
        self.once = None
        self.scratch: Scratch | None = None
        # per GiB: scale the arena's time to 1 GiB; per page: pyperf divides by inner_loops
        self.scale = GIB / size if case.per == "GiB" else 1.0
        self.inner_loops = size // BASE_PAGE if case.per == "page" else None

    def time_func(self, loops: int) -> float:
        if self.once is None:
            if self.cold_bytes:
                self.scratch = _worker_scratch(self.cold_bytes)
            self.once = self.case.setup(self.size, self.stack)
        total = 0.0
        if self.scratch is None:
            for _ in range(loops):
                total += self.once()
        else:
            with _evict_before_timed(self.scratch):
                for _ in range(loops):
                    total += self.once()
        return total * self.scale

    def metadata(self) -> dict:
        unit = UNITS[self.case.per]
        if clock.current().instructions:  # pyperf's "seconds" are then 10**9 guest instructions (shift 0)
            shift = clock.current().shift
            unit = unit.replace("seconds", "10^9" + (f"/2^{shift}" if shift else "") + " guest instructions (icount)")
        return {"hotbench_unit": unit, "hotbench_timed": self.case.what,
                "hotbench_backing": self.case.backing, "hotbench_arena_bytes": self.size,
                "hotbench_mechanism": self.case.mechanism or "none", "hotbench_cold_bytes": self.cold_bytes}

    def close(self) -> None:
        self.stack.close()


@contextlib.contextmanager
def _evict_before_timed(scratch: Scratch):
    """Within: every timed region of a case (``bench.micro.kit.timed``) starts with ``scratch.evict()``, untimed.

    Hooked there rather than before ``once()`` because ``once()`` first restores the state its
    primitive expects (e.g. mprotect(PROT_NONE) of the whole arena before the timed restore),
    which walks the same page tables and would warm them again.
    """
    from bench.micro import kit

    kit.before_timed = scratch.evict
    try:
        yield
    finally:
        kit.before_timed = None


def _worker_environment(args: argparse.Namespace) -> None:
    """Let workers import ``bench`` from any directory and see the variables they need."""
    root = str(Path(__file__).resolve().parents[2])
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])
    args.inherit_environ = list(args.inherit_environ or []) + sorted(
        name for name in os.environ if name.startswith(WORKER_ENVIRON_PREFIXES))


def _check_memory(size: int) -> None:
    """Fail in the manager, in one line, rather than in every worker: one arena (and --cold scratch) at a time."""
    from bench.kernel import procfs

    available = procfs.meminfo().get("MemAvailable", 0)
    if size > available * 0.9:
        raise HotbenchError(f"an arena of {size_token(size)} does not fit: {available >> 20} MiB available; "
                            f"choose a smaller --size / --fault-size / --cold (or --fast)")


def plan(cases, sizes: list[int], fault_size: int) -> list[tuple[str, object, int]]:
    """(benchmark name, case, arena bytes) in registration order: per-GiB cases once per size."""
    out = []
    for case in cases:
        if case.per != "GiB":
            out.append((case.name, case, fault_size))
        elif len(sizes) == 1:
            out.append((case.name, case, sizes[0]))
        else:
            out += [(f"{case.name}@{size_token(size)}", case, size) for size in sizes]
    return out


def _planned(names: str, sizes: list[int], fault_size: int) -> list[tuple[str, object, int]]:
    """The worker's side of ``plan``: the manager's exact benchmark names back to (name, case, arena)."""
    by_name = {case.name: case for case in cases()}
    out = []
    for name in names.split(","):
        case_name, _, at = name.partition("@")
        if case_name not in by_name:
            raise HotbenchError(f"worker asked for unknown benchmark {name!r} (manager and worker differ?)")
        case = by_name[case_name]
        out.append((name, case, parse_size(at) if at else sizes[0] if case.per == "GiB" else fault_size))
    return out


def _too_big(planned: tuple[str, object, int], skipped: list[tuple[str, str]]) -> bool:
    name, case, arena = planned
    reason = case.too_big(arena)
    if reason:
        skipped.append((name, f"not at {size_token(arena)}: {reason}"))
    return bool(reason)


def _print_list(chosen, fault_size: int, sizes: list[int]) -> None:
    for case in chosen:
        reason = unavailable(case)
        arena = ", ".join(size_token(s) for s in sizes) if case.per == "GiB" else size_token(fault_size)
        status = f"skip: {reason}" if reason else f"{UNITS[case.per]}, {case.backing} arena of {arena}"
        print(f"{case.name:42} {status}")


def _check_outputs(args) -> None:
    """pyperf writes -o/--append after the first benchmark: a bad path is refused before any runs."""
    from bench import results

    for option, path in (("-o", args.output), ("--append", args.append)):
        if path:
            results.check_out_file(Path(path), option)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run the suite with pyperf's Runner; *argv* are Runner options plus ours (None: sys.argv)."""
    import pyperf

    worker_options: list[str] = []
    runner = pyperf.Runner(processes=PROCESSES, values=VALUES, program_args=("-m", "bench.micro"),
                           add_cmdline_args=lambda cmd, args: cmd.extend(worker_options),
                           metadata=_metadata())
    runner.argparser.prog = prog or "python -m bench.micro"
    runner.argparser.description = ("pyperf benchmarks of each hotness-tracking primitive on this kernel: "
                                    "arm and scan cost per GiB, fault cost per 4 KiB page")
    _add_arguments(runner.argparser)
    args = runner.parse_args(argv)
    sizes = args.size or [FAST_SIZE if args.fast else DEFAULT_SIZE]
    fault_size = args.fault_size or (FAST_FAULT_SIZE if args.fast else DEFAULT_FAULT_SIZE)

    if args.worker:
        planned = _planned(args.micro_selected or "", sizes, fault_size)
    else:
        if args.list:
            _print_list(cases(), fault_size, sizes)
            return 0
        _check_outputs(args)
        chosen, skipped = select(cases(), args.bench)
        planned = [p for p in plan(chosen, sizes, fault_size) if not _too_big(p, skipped)]
        for name, reason in skipped:
            print(f"skip {name}: {reason}", file=sys.stderr)
        if not planned:
            raise HotbenchError("no benchmark to run" + (f" matches --bench {args.bench!r}" if args.bench else "")
                                + (f" ({len(skipped)} matching ones unavailable here)" if skipped else ""))
        per_gib = any(c.per == "GiB" for c in chosen)
        _check_memory(max(max(sizes) if per_gib else 0,
                          fault_size if any(c.per == "page" for c in chosen) else 0) + (args.cold or 0))
        accel, clk = runner.metadata["accel"], clock.current()
        if clk.instructions:
            print(f"note: icount shift {clk.shift}: every second pyperf prints is 10^9 guest instructions "
                  f"(ms = Minstr, us = kinstr), exact; not comparable to native time", file=sys.stderr)
        elif accel != "native":
            print(f"note: accel={accel}: timings are not comparable to native", file=sys.stderr)
        if args.cold:
            print(f"cold: {size_token(args.cold)} scratch written (one byte per {COLD_STRIDE} B) before every "
                  "timed call, untimed" + ("" if args.loops else "; --loops 1 (each value one call)"),
                  file=sys.stderr)
            if not args.loops:  # 0: pyperf would calibrate, i.e. repeat the primitive warm
                args.loops = 1
        elif per_gib and max(sizes) >= SINGLE_CALL_SIZE and not args.loops:
            print(f"--loops 1: arenas of {size_token(SINGLE_CALL_SIZE)} and more (each call is long; pyperf "
                  "would calibrate loops without the untimed re-preparation of each call)", file=sys.stderr)
            args.loops = 1
        _worker_environment(args)
        worker_options += ["--size", ",".join(map(str, sizes)), "--fault-size", str(fault_size),
                           "--micro-selected", ",".join(name for name, _, _ in planned)]
        if args.cold:
            worker_options += ["--cold", str(args.cold)]
        sys.stdout.flush()
        sys.stderr.flush()

    for name, case, arena in planned:
        bench = _Benchmark(case, arena, args.cold or 0)
        try:
            runner.bench_time_func(name, bench.time_func, inner_loops=bench.inner_loops,
                                   metadata=bench.metadata())
        except RuntimeError as e:  # pyperf's Manager: "<python> failed with exit code N"
            if args.worker:
                raise
            raise HotbenchError(f"{name}: a worker failed ({e}); its traceback is above") from None
        except SystemExit:  # pyperf ends an interrupted benchmark with exit status 1 (its worker killed)
            if interrupts.last_signal() is not None and not args.worker:
                raise Interrupted(interrupts.last_signal()) from None
            raise
        finally:
            bench.close()
    return 0


def console_main() -> int:
    """``python -m bench.micro``: the pyperf program (manager and workers)."""
    from bench import numba_cache

    interrupts.install()
    numba_cache.ensure_writable()
    try:
        return main()
    except HotbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Interrupted as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_status

