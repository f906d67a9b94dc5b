"""The eviction variants of ``bench.evict``: how each one observes, intercepts, releases.

Each variant is a small class the driver calls in a fixed order every round::

    arm()                 start of the observation window
    (sleep interval)
    freeze()              switch to synchronous interception (before the scan)
    hot = scan()          the hot set; cold = resident and not hot
    intercept(runs)       interception that needs the cold set (uffd-wp: WRITEPROTECT)
    (write out, hold, drop -- the driver's, same for all)
    release(runs, kept)   end interception, wake blocked vCPUs

and counts the uffd ioctls it issues in ``self.ioctls``. ``register_mode``/``features`` say how
the arena (the vCPUs' mapping) is registered; the handler serves MISSING faults with
``UFFDIO_COPY`` in every variant. Variants that detect with a tracker take it from
``bench.trackers`` (a page-granular one that does not itself register the arena with
userfaultfd: the arena belongs to the eviction's userfaultfd).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from bench.kernel import libc, pagemap, uffd
from bench.evict import _core as core

# Trackers that register the arena with their own userfaultfd cannot share it with the eviction's.
UFFD_TRACKERS = ("uffd-wp", "uffd-minor", "rwp", "rwp-rfc")


class Variant:
    name: ClassVar[str]
    mechanism: ClassVar[str | None]   # mechanism (bench.trackers.probe) that gates it (None: the detector's)
    backings: ClassVar[tuple[str, ...]]
    blocks: ClassVar[str]             # what a vCPU touching a page being evicted waits for
    builtin_detector: ClassVar[str | None] = None  # detection is part of the variant (else a tracker)
    evicts: ClassVar[bool] = True
    summary: ClassVar[str]

    def __init__(self, ctx):
        self.ctx = ctx                # the driver's run state: arena, uffd, detector, handler, scanner
        self.ioctls = 0

    @classmethod
    def features(cls, backing: str) -> int:
        raise NotImplementedError

    @classmethod
    def register_mode(cls, backing: str) -> int:
        raise NotImplementedError

    def start(self) -> None:
        pass

    def arm(self) -> None:
        self.ctx.detector.arm()

    def freeze(self) -> None:
        pass

    def scan(self) -> np.ndarray:
        return np.asarray(self.ctx.detector.collect().accessed, dtype=bool)

    def intercept(self, runs: np.ndarray) -> None:
        pass

    def release(self, runs: np.ndarray, kept: np.ndarray) -> None:
        pass

    def stop(self) -> None:
        pass

    def _range_ioctl(self, request: int, runs: np.ndarray, mode: int, what: str) -> None:
        done = core.range_ioctl(self.ctx.uffd.fd, request, runs, self.ctx.arena.addr, mode)
        if done < 0:  # repeat the failing call through ctypes for its errno
            first, count = runs[-done - 1]
            arg = uffd.uffdio_writeprotect(range=uffd.uffdio_range(self.ctx.arena.addr + int(first) * core.PAGE,
                                                                   int(count) * core.PAGE), mode=mode)
            libc.ioctl(self.ctx.uffd.fd, request, arg, what)
            raise OSError(f"{what} failed on run {-done - 1} and then succeeded when repeated")
        self.ioctls += done


def _shmem_bits(backing: str, bits: int) -> int:
    return bits if backing == "shmem" else 0


class RwpSync(Variant):
    """7.3 RWP, the documented VMM workflow (Documentation/admin-guide/mm/userfaultfd.rst)."""

    name = "rwp-sync"
    mechanism = "rwp"
    backings = ("shmem",)
    blocks = "reads+writes"
    builtin_detector = "rwp"
    summary = ("RWPROTECT all -> window -> SET_MODE(-RWP_ASYNC) -> PAGEMAP_SCAN(ACCESSED) -> write out, punch -> "
               "UFFDIO_WAKE -> SET_MODE(+RWP_ASYNC); refetch by UFFDIO_COPY on MISSING")

    @classmethod
    def features(cls, backing):
        return uffd.UFFD_FEATURE_RWP | uffd.UFFD_FEATURE_RWP_ASYNC | uffd.UFFD_FEATURE_MISSING_SHMEM

    @classmethod
    def register_mode(cls, backing):
        return uffd.UFFDIO_REGISTER_MODE_RWP | uffd.UFFDIO_REGISTER_MODE_MISSING

    def start(self) -> None:
        if not self.ctx.range_ioctls & (1 << uffd._UFFDIO_RWPROTECT):
            raise OSError(f"UFFDIO_REGISTER(MODE_RWP|MODE_MISSING) offers no UFFDIO_RWPROTECT "
                          f"(range ioctls {self.ctx.range_ioctls:#x})")
        self.sync = False

    def arm(self) -> None:
        a = self.ctx.arena
        self.ctx.uffd.rwprotect(a.addr, a.size, True)
        self.ioctls += 1

    def freeze(self) -> None:
        self.ctx.uffd.set_mode(disable=uffd.UFFD_FEATURE_RWP_ASYNC)
        self.sync = True
        self.ioctls += 1

    def scan(self) -> np.ndarray:
        a = self.ctx.arena
        regions = self.ctx.scanner.scan(a.addr, a.end, category_mask=pagemap.PAGE_IS_ACCESSED,
                                        return_mask=pagemap.PAGE_IS_ACCESSED)
        return pagemap.regions_to_bitmap(regions, a.addr, a.npages)

    def release(self, runs, kept) -> None:
        a = self.ctx.arena
        if kept.any():  # rescued pages: unprotect (and wake) them, they stay in memory
            self._range_ioctl(uffd.UFFDIO_RWPROTECT, core.runs_of(kept), 0, "UFFDIO_RWPROTECT(resolve)")
        self.ctx.uffd.wake(a.addr, a.size)  # the punch does not wake RWP waiters
        self.ctx.uffd.set_mode(enable=uffd.UFFD_FEATURE_RWP_ASYNC)
        self.sync = False
        self.ioctls += 2

    def stop(self) -> None:
        if getattr(self, "sync", False) and self.ctx.uffd is not None and self.ctx.uffd.fd >= 0:
            self.ctx.uffd.set_mode(enable=uffd.UFFD_FEATURE_RWP_ASYNC)
            self.sync = False


class UffdWp(Variant):
    """Write-protect the cold set (synchronous uffd-wp), umap style: blocks writes only."""

    name = "uffd-wp"
    mechanism = "uffd-wp"
    backings = ("shmem", "anon")
    blocks = "writes"
    summary = ("tracker window -> scan -> UFFDIO_WRITEPROTECT(each cold run) -> write out, drop -> "
               "UFFDIO_WRITEPROTECT(mode 0, each run: unprotect + wake); reads in the window are not seen")

    @classmethod
    def features(cls, backing):
        return uffd.UFFD_FEATURE_PAGEFAULT_FLAG_WP | _shmem_bits(
            backing, uffd.UFFD_FEATURE_WP_HUGETLBFS_SHMEM | uffd.UFFD_FEATURE_MISSING_SHMEM)

    @classmethod
    def register_mode(cls, backing):
        return uffd.UFFDIO_REGISTER_MODE_WP | uffd.UFFDIO_REGISTER_MODE_MISSING

    def intercept(self, runs) -> None:
        self._range_ioctl(uffd.UFFDIO_WRITEPROTECT, runs, uffd.UFFDIO_WRITEPROTECT_MODE_WP, "UFFDIO_WRITEPROTECT")

    def release(self, runs, kept) -> None:
        self._range_ioctl(uffd.UFFDIO_WRITEPROTECT, runs, 0, "UFFDIO_WRITEPROTECT(unprotect)")


class ShmemMinor(Variant):
    """Upstream MINOR faults as the interception (the April-2026 RFC's shmem path, without the RFC)."""

    name = "shmem-minor"
    mechanism = "uffd-minor"
    backings = ("shmem",)
    blocks = "reads+writes"
    builtin_detector = "shmem-zap-minor"
    summary = ("MADV_DONTNEED (zap PTEs) -> window, first touches CONTINUEd by the handler -> handler HOLD -> "
               "PAGEMAP_SCAN(PRESENT) -> write out, punch -> handler RUN, UFFDIO_WAKE; refetch by UFFDIO_COPY")

    @classmethod
    def features(cls, backing):
        return uffd.UFFD_FEATURE_MINOR_SHMEM | uffd.UFFD_FEATURE_MISSING_SHMEM

    @classmethod
    def register_mode(cls, backing):
        return uffd.UFFDIO_REGISTER_MODE_MINOR | uffd.UFFDIO_REGISTER_MODE_MISSING

    def arm(self) -> None:
        a = self.ctx.arena
        libc.madvise(a.addr, a.size, libc.MADV_DONTNEED)  # shared memory: PTEs go, page cache stays

    def freeze(self) -> None:
        self.ctx.command(core.HOLD)

    def scan(self) -> np.ndarray:
        a = self.ctx.arena
        regions = self.ctx.scanner.scan(a.addr, a.end, category_mask=pagemap.PAGE_IS_PRESENT,
                                        return_mask=pagemap.PAGE_IS_PRESENT)
        return pagemap.regions_to_bitmap(regions, a.addr, a.npages)

    def release(self, runs, kept) -> None:
        a = self.ctx.arena
        self.ctx.command(core.RUN)
        self.ctx.uffd.wake(a.addr, a.size)  # held threads retry: MISSING if punched, else MINOR -> CONTINUE
        self.ioctls += 1

    def stop(self) -> None:
        if self.ctx.handler_running():
            self.ctx.command(core.RUN)


class Racy(Variant):
    """No interception at all: write out, (hold), drop, while the vCPUs keep writing. Loses data."""

    name = "racy"
    mechanism = "uffd-wp"
    backings = ("shmem", "anon")
    blocks = "nothing"
    summary = ("tracker window -> scan -> write out -> drop, no interception (writes between write-out and drop are "
               "lost: the integrity checker must catch it)")

    @classmethod
    def features(cls, backing):
        # MODE_WP is registered on shmem only so that the kernel disables fault-around there, as for
        # uffd-wp: the tracker then sees the same hot set. No page is ever write-protected.
        return _shmem_bits(backing, uffd.UFFD_FEATURE_PAGEFAULT_FLAG_WP | uffd.UFFD_FEATURE_WP_HUGETLBFS_SHMEM
                           | uffd.UFFD_FEATURE_MISSING_SHMEM)

    @classmethod
    def register_mode(cls, backing):
        return uffd.UFFDIO_REGISTER_MODE_MISSING | _shmem_bits(backing, uffd.UFFDIO_REGISTER_MODE_WP)


class NoEviction(Racy):
    """The floor: the same vCPUs, detector and registration as ``racy``, but nothing is evicted."""

    name = "none"
    mechanism = None
    evicts = False
    summary = "tracker window -> scan -> nothing: the vCPU stall floor (scheduling, tracker) to compare with"


VARIANTS: dict[str, type[Variant]] = {cls.name: cls for cls in (RwpSync, UffdWp, ShmemMinor, Racy, NoEviction)}
