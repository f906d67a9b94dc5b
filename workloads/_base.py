"""The workload base class: parameters and their validation, threads, truth.

A workload is deterministic in (seed, parameters, interval). Its parameters are class-level
defaults (``defaults``, asv style) turned into instance attributes; everything the
measured loop needs per interval is computed here before any thread starts. This module
imports numpy only, so ``import workloads`` stays cheap; numba arrives with the patterns.
Every failure a user can cause raises ``WorkloadError`` with one line saying what to do.
"""

from __future__ import annotations

import hashlib
import math
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, NoReturn

import numpy as np

__all__ = ["WorkloadError", "Truth", "Workload", "COMMON_DEFAULTS"]

# Parameters every workload takes, with their defaults (a spec may set them too).
COMMON_DEFAULTS: dict[str, Any] = {"accesses": 100_000, "threads": 1, "write_ratio": 0.3}
# Parameters that are create() arguments only; a spec setting them would be silently overridden.
_NOT_IN_SPEC = ("npages", "page_size", "seed")
_MAX_THREADS = 1024
_MAX_ACCESSES = (1 << 32) - 1     # truth counts are uint32 per page
_MAX_PAGES = 1 << 32              # the kernels scale 32-bit random words to a page
MAX_PAGE_SIZE = 1 << 16           # the kernels take a line index from 10 random bits
SEED_MAX = (1 << 64) - 1          # a seed is a stream key: one uint64

_HERE = Path(__file__).resolve().parent
# Files whose code decides what a workload touches besides its own module (see version).
_SHARED_SOURCES = (_HERE / "_kernels.py", _HERE / "_kinds.py", _HERE / "_base.py")


class WorkloadError(ValueError):
    """A bad workload name, spec, parameter or config; the message is one line."""


@dataclass(frozen=True, eq=False)
class Truth:
    """Exactly which pages one interval read and wrote (read-only arrays)."""

    read: np.ndarray      # bool[npages]
    written: np.ndarray   # bool[npages]

    @property
    def any(self) -> np.ndarray:
        return self.read | self.written


def _source_version(module_name: str) -> str:
    # asv-style: a hash of the code that decides the accesses, so an edited workload is
    # never compared with results of the old one.
    digest = hashlib.sha256()
    own = Path(sys.modules[module_name].__file__).resolve()
    for path in (own, *(p for p in _SHARED_SOURCES if p != own)):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _convert(workload: str, key: str, value: Any, default: Any) -> Any:
    """*value* (a spec string or a Python value) as the type of *default*."""
    if isinstance(default, bool) or not isinstance(default, (int, float, str)):
        raise TypeError(f"unsupported default type for {workload}.{key}")
    if isinstance(default, str):
        if not isinstance(value, str):
            raise WorkloadError(f"{workload}: {key} must be a string, got {value!r}")
        return value
    if isinstance(value, str):
        value = value.strip()
    if isinstance(default, int):
        return _as_int(workload, key, value)
    return _as_float(workload, key, value)


def _as_int(workload: str, key: str, value: Any) -> int:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    try:
        number = float(value)      # accepts "1e5" and "100_000" as well as "7"
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or not number.is_integer():
        raise WorkloadError(f"{workload}: {key} must be an integer, got {value!r}")
    if isinstance(value, str) and "." not in value and "e" not in value.lower():
        return int(value)          # exact even beyond float precision (seeds, big counts)
    return int(number)


def _as_float(workload: str, key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise WorkloadError(f"{workload}: {key} must be a finite number, got {value!r}")
    return number


class Workload:
    """A seeded access pattern over an arena of ``npages`` pages of ``page_size`` bytes.

    Subclasses set ``name`` and ``defaults`` (their own parameters with default values),
    validate in ``_setup`` and inherit the generator plumbing from one kind in ``_kinds``.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    # The kind's compiled kernels (staticmethods set in _kinds).
    _touch: ClassVar[Callable[..., int]]
    _record: ClassVar[Callable[..., None]]

    npages: int
    page_size: int
    seed: int
    accesses: int
    threads: int
    write_ratio: float

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.version = _source_version(cls.__module__)

    def __init__(self, *, npages: int, page_size: int, seed: int, accesses: int | None = None,
                 threads: int | None = None, write_ratio: float | None = None,
                 **params: Any) -> None:
        self.npages = self._int_in("npages", npages, 1, _MAX_PAGES - 1)
        self.page_size = self._int_in("page_size", page_size, 64, MAX_PAGE_SIZE)
        self._require(self.page_size & (self.page_size - 1) == 0,
                      f"page_size must be a power of two, got {page_size}")
        self.seed = self._int_in("seed", seed, 0, SEED_MAX)
        # Explicit arguments win over spec parameters of the same name.
        common = {"accesses": accesses, "threads": threads, "write_ratio": write_ratio}
        for key, value in common.items():
            from_spec = params.pop(key, None)
            common[key] = from_spec if value is None else value
        self._set_params(COMMON_DEFAULTS, common)
        self._set_params(self.defaults, params)
        self._int_in("accesses", self.accesses, 1, _MAX_ACCESSES)
        self._int_in("threads", self.threads, 1, _MAX_THREADS)
        self._float_in("write_ratio", self.write_ratio, 0.0, 1.0)
        self._setup()

    # ---- parameters -----------------------------------------------------------------

    @classmethod
    def check_keys(cls, keys: Any) -> None:
        """Refuse parameter names this workload does not take."""
        known = {**COMMON_DEFAULTS, **cls.defaults}
        for key in keys:
            if key in _NOT_IN_SPEC:
                raise WorkloadError(f"{cls.name}: {key} is not a spec parameter; remove it "
                                    "from the spec and give it to the runner instead")
            if key not in known:
                raise WorkloadError(f"{cls.name}: unknown parameter {key!r}; "
                                    f"choose from: {', '.join(known)}")

    def _set_params(self, defaults: dict[str, Any], given: dict[str, Any]) -> None:
        self.check_keys(k for k, v in given.items() if v is not None)
        for key, default in defaults.items():
            value = given.get(key)
            setattr(self, key, default if value is None
                    else _convert(self.name, key, value, default))

    def params(self) -> dict[str, Any]:
        """Every parameter, defaults included, JSON-serialisable (for the results manifest)."""
        out: dict[str, Any] = {"npages": self.npages, "page_size": self.page_size,
                               "seed": self.seed}
        out.update({k: getattr(self, k) for k in COMMON_DEFAULTS})
        out.update({k: getattr(self, k) for k in self.defaults})
        out.update(self._derived_params())
        return out

    def _derived_params(self) -> dict[str, Any]:
        # Resolved values worth keeping in the manifest (e.g. masim's region pages).
        return {}

    def _setup(self) -> None:
        # Validate pattern parameters and build per-workload tables.
        pass

    # ---- validation helpers (one-line messages, prefixed with the workload name) -----

    def _fail(self, message: str) -> NoReturn:
        raise WorkloadError(f"{self.name}: {message}")

    def _require(self, ok: bool, message: str) -> None:
        if not ok:
            self._fail(message)

    def _int_in(self, key: str, value: Any, lo: int, hi: int) -> int:
        value = _convert(self.name, key, value, 0)
        self._require(lo <= value <= hi, f"{key} must be in [{lo}, {hi}], got {value}")
        return value

    def _float_in(self, key: str, value: float, lo: float, hi: float, *,
                  open_lo: bool = False, open_hi: bool = False) -> float:
        ok = (lo < value if open_lo else lo <= value) and (value < hi if open_hi else value <= hi)
        interval = f"{'(' if open_lo else '['}{lo:g}, {hi:g}{')' if open_hi else ']'}"
        self._require(ok, f"{key} must be in {interval}, got {value:g}")
        return value

    # ---- the generator plumbing (kinds override the two hooks) -----------------------

    def _interval_args(self, interval: int) -> tuple:
        """The kind's generator arguments shared by all threads of *interval*."""
        raise NotImplementedError

    def _thread_args(self, shared: tuple, first: int) -> tuple:
        """Per-thread generator arguments; *first* is the global index of its first access."""
        return shared

    def _touch_call(self, plan: tuple) -> tuple[Callable[..., int], tuple]:
        """The touch kernel and its arguments after (arena, page_size) for one thread."""
        return self._touch, plan

    def _plan(self, interval: int) -> list[tuple]:
        """Per thread: (accesses, stream key, *generator args) — all work before threads start."""
        if isinstance(interval, bool) or not isinstance(interval, (int, np.integer)) \
                or interval < 0:
            raise WorkloadError(f"{self.name}: interval must be an integer >= 0, got {interval!r}")
        interval = int(interval)
        from workloads._kernels import stream_state   # numba, loaded only with the kinds
        shared = self._interval_args(interval)
        share, extra = divmod(self.accesses, self.threads)
        first = interval * self.accesses
        plans = []
        for t in range(self.threads):
            n = share + (t < extra)
            key = stream_state(self.seed, interval, t)
            plans.append((np.int64(n), key, *self._thread_args(shared, first)))
            first += n
        return plans

    # ---- the public operations ---------------------------------------------------------

    def run_interval(self, arena: np.ndarray, interval: int) -> int:
        """Touch *arena* for *interval* with ``threads`` threads; returns the read checksum.

        Nothing here touches arena memory while holding the GIL: the only code that does is
        the nogil kernel, called from the caller's thread (threads=1) or from fresh threads.
        """
        self._check_arena(arena)
        calls = [self._touch_call(plan) for plan in self._plan(interval)]
        page_size = np.int64(self.page_size)
        if len(calls) == 1:
            touch, args = calls[0]
            return int(touch(arena, page_size, *args))
        sums = [0] * len(calls)
        errors: list[BaseException] = []

        def work(t: int) -> None:
            touch, args = calls[t]
            try:
                sums[t] = int(touch(arena, page_size, *args))
            except BaseException as exc:    # re-raised below, in the caller's thread
                errors.append(exc)

        workers = [threading.Thread(target=work, args=(t,), name=f"workload-{self.name}-{t}",
                                    daemon=True) for t in range(len(calls))]
        for worker in workers:
            worker.start()
        try:
            for worker in workers:
                worker.join()
        except BaseException:  # raised in this thread (a runner's watchdog): the caller will unmap
            for worker in workers:  # the arena, so no worker may still be touching it
                worker.join()
            raise
        if errors:
            raise errors[0]
        return sum(sums) & ((1 << 64) - 1)

    def counts(self, interval: int) -> tuple[np.ndarray, np.ndarray]:
        """Replay *interval*: (reads, writes), uint32[npages] access counts per page."""
        reads = np.zeros(self.npages, np.uint32)
        writes = np.zeros(self.npages, np.uint32)
        page_size = np.int64(self.page_size)
        for plan in self._plan(interval):
            self._record(reads, writes, page_size, *plan)
        return reads, writes

    def truth(self, interval: int) -> Truth:
        """Exactly which pages *interval* read and wrote; a pure function of seed, params, i."""
        reads, writes = self.counts(interval)
        read, written = reads > 0, writes > 0
        read.flags.writeable = False
        written.flags.writeable = False
        return Truth(read, written)

    def warmup(self) -> None:
        """Compile (or load from numba's cache) this workload's kernels with the exact
        argument types of a real interval, on tiny private arrays and zero accesses."""
        page_size = np.int64(self.page_size)
        for plan in self._warmup_plans():
            idle = (np.int64(0), *plan[1:])
            touch, args = self._touch_call(idle)
            touch(np.zeros(self.page_size, np.uint8), page_size, *args)
            self._record(np.zeros(1, np.uint32), np.zeros(1, np.uint32), page_size, *idle)

    def _warmup_plans(self) -> list[tuple]:
        # One plan per kernel this workload may use (masim switches kernels per phase).
        return self._plan(0)[:1]

    def _check_arena(self, arena: Any) -> None:
        # A different array type would also recompile the kernel inside the measured interval.
        need = self.npages * self.page_size
        ok = (isinstance(arena, np.ndarray) and arena.dtype == np.uint8 and arena.ndim == 1
              and arena.flags.c_contiguous and arena.flags.writeable and arena.size >= need)
        if not ok:
            got = (f"{arena.dtype}[{arena.shape}]" if isinstance(arena, np.ndarray)
                   else type(arena).__name__)
            self._fail(f"arena must be a writable C-contiguous 1-D uint8 array of at least "
                       f"{need} bytes, got {got}")

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params().items()
                           if not isinstance(v, (list, dict)))
        return f"<{type(self).__name__} {params}>"
