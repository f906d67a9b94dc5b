"""Which hotness-tracking mechanisms this kernel offers, and exactly why not otherwise.

Every verdict comes from the feature itself — a ``UFFDIO_API`` feature bit, a
``PAGEMAP_SCAN`` category the kernel accepts, a file that exists, a one-page functional
check — never from ``uname -r``. The kernel config (``/proc/config.gz`` or
``/boot/config-RELEASE``) only enriches a reason with the option that is missing.

Probing changes no kernel state except transient, self-owned and fully undone things:
throw-away userfaultfds, one-page private or memfd mappings, and ``clear_refs`` of this
process (value 4, for the soft-dirty check: do not probe while a soft-dirty tracker runs
in this process). Nothing under /sys is ever written; in particular a kdamond found
running belongs to someone else and is only read.

Failures: an OSError raised while probing one mechanism becomes that mechanism's
"unavailable" reason (naming the call and errno); other exceptions are bugs and propagate.

One ``probe_<mechanism>`` function per mechanism. Which one a mechanism uses is a fact of
its tracker (``Tracker.kernel_probe``), so this module, the ABI layer, names no tracker and
keeps no list of mechanisms: ``bench.trackers.probe_all()`` is that list, from the registry.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from bench.kernel import libc, damon_sysfs, mglru, page_idle, pagemap, procfs, uffd, uffd_rfc
from bench.kernel.procfs import MAX_MAP_COUNT, NUMA_BALANCING, UNPRIVILEGED_USERFAULTFD

__all__ = ["Probe", "verdict", "raw_facts", "clear_cache", "probe_rwp", "probe_rwp_rfc", "probe_idle_page",
           "probe_mglru", "probe_uffd_wp", "probe_soft_dirty", "probe_damon_vaddr", "probe_damon_paddr",
           "probe_referenced", "probe_shmem_zap", "probe_uffd_minor", "probe_mprotect"]

PAGE_SIZE = pagemap.PAGE_SIZE
_UNTESTED = uffd_rfc.UNTESTED.partition(":")[0]  # "untested on a live kernel"


@dataclass(frozen=True)
class Probe:
    """One mechanism's verdict. ``reason``: the one-line why-not, or what was verified."""

    available: bool
    reason: str
    details: dict = field(default_factory=dict, hash=False, compare=False)


def _errname(e: OSError) -> str:
    return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else str(e)


def _failed(e: OSError) -> str:
    """'UFFDIO_REGISTER(mode=0x8) failed with EINVAL'."""
    return f"{e.filename or 'call'} failed with {_errname(e)}"


def _root() -> bool:
    return os.geteuid() == 0


# ---------------------------------------------------------------- shared facts (cached)

@dataclass(frozen=True)
class _Uffd:
    features: int | None  # None: no fd could be opened
    ioctls: int | None
    via: str | None
    errors: tuple[tuple[str, str], ...]  # (door, errno name) for each door that failed

    def has(self, bits: int) -> bool:
        return self.features is not None and self.features & bits == bits


@functools.cache
def _uffd() -> _Uffd:
    """Full feature mask from a throw-away fd; when none opens, the errno of each door."""
    try:
        f = uffd.api_features()
        return _Uffd(f.features, f.ioctls, f.via, ())
    except OSError as e:
        api_error = e
    errors = []
    flags = os.O_CLOEXEC | os.O_NONBLOCK
    try:  # both doors, separately, to name each errno
        os.close(libc.syscall(uffd.__NR_userfaultfd, flags, "userfaultfd(2)"))
    except OSError as e:
        errors.append(("userfaultfd(2)", _errname(e)))
    try:
        dev = os.open("/dev/userfaultfd", os.O_RDWR | os.O_CLOEXEC)
        try:
            os.close(libc.ioctl(dev, uffd.USERFAULTFD_IOC_NEW, flags, "USERFAULTFD_IOC_NEW"))
        finally:
            os.close(dev)
    except OSError as e:
        errors.append(("/dev/userfaultfd", _errname(e)))
    if len(errors) < 2:  # a door opens: the handshake itself failed
        errors = [(str(api_error.filename), _errname(api_error))]
    return _Uffd(None, None, None, tuple(errors))


def _uffd_missing() -> str | None:
    """Why no (kernel-fault-capable) userfaultfd can be opened here, or None."""
    info = _uffd()
    if info.features is not None:
        return None
    errs = "; ".join(f"{door}: {name}" for door, name in info.errors) or "UFFDIO_API failed"
    if all(name in ("EPERM", "EACCES") for _, name in info.errors) and not _root():
        # Not UFFD_USER_MODE_ONLY: KVM faults guest memory in from kernel mode.
        sysctl = procfs.read_text(UNPRIVILEGED_USERFAULTFD)
        errs = errs.replace("userfaultfd(2): EPERM", f"userfaultfd(2): EPERM, vm.unprivileged_userfaultfd={sysctl}")
        return f"needs root ({errs})"
    return procfs.config_reason(f"no userfaultfd ({errs})", "CONFIG_USERFAULTFD")


@functools.cache
def _categories() -> tuple[int | None, str | None]:
    """(PAGEMAP_SCAN category mask, None) or (None, why there is no PAGEMAP_SCAN)."""
    try:
        return pagemap.supported_categories(), None
    except OSError as e:
        if e.errno == errno.ENOTTY:
            return None, "no PAGEMAP_SCAN ioctl on /proc/self/pagemap (ENOTTY): needs Linux 6.7+"
        return None, f"PAGEMAP_SCAN probe: {_failed(e)}"


def _features_note() -> str:
    info = _uffd()
    return f"UFFDIO_API features {info.features:#x}"


def _categories_note() -> str:
    mask, _ = _categories()
    return f"PAGEMAP_SCAN categories {mask:#x}"


# ---------------------------------------------------------------- one-page scratch memory

@contextlib.contextmanager
def _anon_page() -> Iterator[int]:
    """One populated private anonymous page, unmapped on exit."""
    addr = libc.mmap(PAGE_SIZE, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS)
    try:
        ctypes.memset(addr, 0x5A, PAGE_SIZE)
        yield addr
    finally:
        libc.munmap(addr, PAGE_SIZE)


@contextlib.contextmanager
def _memfd_page() -> Iterator[int]:
    """One populated page of a memfd (shmem) mapped shared; fd closed and page unmapped on exit."""
    fd = libc.memfd_create("hotbench-probe", libc.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, PAGE_SIZE)
        addr = libc.mmap(PAGE_SIZE, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED, fd)
        try:
            ctypes.memset(addr, 0x5A, PAGE_SIZE)
            yield addr
        finally:
            libc.munmap(addr, PAGE_SIZE)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- mechanisms

def _rwp_functional() -> tuple[str | None, int]:
    """7.3 ABI check: register MODE_RWP and UFFDIO_RWPROTECT one page. (failure or None, range ioctls)."""
    try:
        with _anon_page() as addr, uffd.Userfaultfd(uffd.UFFD_FEATURE_RWP | uffd.UFFD_FEATURE_RWP_ASYNC) as u:
            ioctls = u.register(addr, PAGE_SIZE, uffd.UFFDIO_REGISTER_MODE_RWP)
            u.rwprotect(addr, PAGE_SIZE, True)
            return None, ioctls
    except OSError as e:
        return _failed(e), 0


def probe_rwp() -> Probe:
    missing = _uffd_missing()
    if missing:
        return Probe(False, missing, {})
    info = _uffd()
    details = {"features": info.features}
    if not info.has(uffd.UFFD_FEATURE_RWP):
        return Probe(False, "UFFDIO_API lacks UFFD_FEATURE_RWP (bit 17): needs Linux 7.3+ with CONFIG_USERFAULTFD_RWP",
                     details)
    if not info.has(uffd.UFFD_FEATURE_RWP_ASYNC):
        return Probe(False, f"UFFDIO_API has bit 17 but lacks UFFD_FEATURE_RWP_ASYNC (bit 18): "
                            f"features {info.features:#x} are not the 7.3 RWP ABI", details)
    mask, why = _categories()
    if mask is None:
        return Probe(False, why, details)
    details["categories"] = mask
    if not mask & pagemap.PAGE_IS_ACCESSED:
        return Probe(False, f"PAGEMAP_SCAN rejects PAGE_IS_ACCESSED (0x200; categories {mask:#x}) "
                            f"although UFFDIO_API has bits 17/18", details)
    failure, ioctls = _rwp_functional()
    if failure:
        return Probe(False, f"UFFDIO_API has bits 17/18 but {failure}: not the 7.3 RWP ABI "
                            f"(the April-2026 RFC reuses those bits; see rwp-rfc)", details)
    details["range_ioctls"] = ioctls
    return Probe(True, f"{_features_note()}: RWP, RWP_ASYNC; {_categories_note()} incl. PAGE_IS_ACCESSED; "
                       f"UFFDIO_REGISTER_MODE_RWP + UFFDIO_RWPROTECT work (range ioctls {ioctls:#x})", details)


def probe_rwp_rfc() -> Probe:
    missing = _uffd_missing()
    if missing:
        return Probe(False, f"{missing}; {_UNTESTED}", {})
    info = _uffd()
    details = {"features": info.features, "untested": uffd_rfc.UNTESTED}
    if not info.has(uffd_rfc.UFFD_FEATURE_MINOR_ANON):
        return Probe(False, f"UFFDIO_API lacks bit 17 (UFFD_FEATURE_MINOR_ANON of the April-2026 RFC, never merged); "
                            f"{_UNTESTED}", details)
    if not info.has(uffd_rfc.UFFD_FEATURE_MINOR_ASYNC):
        return Probe(False, f"UFFDIO_API lacks bit 18 (UFFD_FEATURE_MINOR_ASYNC of the April-2026 RFC); {_UNTESTED}",
                     details)
    if _rwp_functional()[0] is None:
        return Probe(False, f"bits 17/18 are the 7.3 RWP ABI here (UFFDIO_REGISTER_MODE_RWP works), not the RFC; "
                            f"{_UNTESTED}", details)
    try:
        with _anon_page() as addr, uffd.Userfaultfd(uffd_rfc.UFFD_FEATURE_MINOR_ANON | uffd_rfc.UFFD_FEATURE_MINOR_ASYNC) as u:
            u.register(addr, PAGE_SIZE, uffd.UFFDIO_REGISTER_MODE_MINOR)
            libc.ioctl(u.fd, uffd_rfc.UFFDIO_DEACTIVATE, uffd.uffdio_range(addr, PAGE_SIZE), "UFFDIO_DEACTIVATE")
    except OSError as e:
        return Probe(False, f"bits 17/18 set but the RFC check failed: {_failed(e)}; {_UNTESTED}", details)
    return Probe(True, f"{_features_note()}: MINOR_ANON, MINOR_ASYNC; MODE_MINOR on private anon + "
                       f"UFFDIO_DEACTIVATE work; {_UNTESTED}", details)


def probe_uffd_wp() -> Probe:
    missing = _uffd_missing()
    if missing:
        return Probe(False, missing, {})
    info = _uffd()
    details = {"features": info.features}
    if not info.has(uffd.UFFD_FEATURE_WP_ASYNC):
        return Probe(False, procfs.config_reason(
            f"UFFDIO_API lacks UFFD_FEATURE_WP_ASYNC (bit 15; features {info.features:#x}): needs Linux 6.7+",
            "CONFIG_PTE_MARKER_UFFD_WP"), details)
    mask, why = _categories()
    if mask is None:
        return Probe(False, why, details)
    details["categories"] = mask
    if not mask & pagemap.PAGE_IS_WRITTEN:
        return Probe(False, f"PAGEMAP_SCAN rejects PAGE_IS_WRITTEN (categories {mask:#x})", details)
    scan = dict(flags=pagemap.PM_SCAN_WP_MATCHING | pagemap.PM_SCAN_CHECK_WPASYNC,
                category_mask=pagemap.PAGE_IS_WRITTEN, return_mask=pagemap.PAGE_IS_WRITTEN)
    with _anon_page() as addr, uffd.Userfaultfd(uffd.UFFD_FEATURE_WP_ASYNC) as u, pagemap.Scanner(vec_len=4) as s:
        u.register(addr, PAGE_SIZE, uffd.UFFDIO_REGISTER_MODE_WP)
        first = len(s.scan(addr, addr + PAGE_SIZE, **scan))
        second = len(s.scan(addr, addr + PAGE_SIZE, **scan))
    if (first, second) != (1, 0):
        return Probe(False, f"uffd-wp async scan misbehaves: a written page gave {first} then {second} regions "
                            f"(expected 1 then 0)", details)
    return Probe(True, f"{_features_note()}: WP_ASYNC; {_categories_note()}; "
                       f"WP_MATCHING scan-and-protect verified on one page", details)


def probe_uffd_minor() -> Probe:
    missing = _uffd_missing()
    if missing:
        return Probe(False, missing, {})
    info = _uffd()
    details = {"features": info.features}
    if not info.has(uffd.UFFD_FEATURE_MINOR_SHMEM):
        return Probe(False, procfs.config_reason(
            f"UFFDIO_API lacks UFFD_FEATURE_MINOR_SHMEM (bit 10; features {info.features:#x})",
            "CONFIG_HAVE_ARCH_USERFAULTFD_MINOR"), details)
    with _memfd_page() as addr, uffd.Userfaultfd(uffd.UFFD_FEATURE_MINOR_SHMEM) as u:
        ioctls = u.register(addr, PAGE_SIZE, uffd.UFFDIO_REGISTER_MODE_MINOR)
    details["range_ioctls"] = ioctls
    if not ioctls & (1 << uffd._UFFDIO_CONTINUE):
        return Probe(False, f"MODE_MINOR on shmem registered but UFFDIO_CONTINUE not offered (range ioctls {ioctls:#x})",
                     details)
    return Probe(True, f"{_features_note()}: MINOR_SHMEM; MODE_MINOR on a memfd page offers UFFDIO_CONTINUE "
                       f"(range ioctls {ioctls:#x})", details)


def probe_shmem_zap() -> Probe:
    mask, why = _categories()
    if mask is None:
        return Probe(False, why, {})
    details = {"categories": mask}
    if not mask & pagemap.PAGE_IS_PRESENT:
        return Probe(False, f"PAGEMAP_SCAN rejects PAGE_IS_PRESENT (categories {mask:#x})", details)
    try:
        with _memfd_page() as addr, pagemap.Scanner(vec_len=4) as s:
            scan = dict(category_mask=pagemap.PAGE_IS_PRESENT, return_mask=pagemap.PAGE_IS_PRESENT)
            before = len(s.scan(addr, addr + PAGE_SIZE, **scan))
            libc.madvise(addr, PAGE_SIZE, libc.MADV_DONTNEED)
            after = len(s.scan(addr, addr + PAGE_SIZE, **scan))
    except OSError as e:
        if e.filename and "memfd_create" in str(e.filename):
            return Probe(False, procfs.config_reason(f"memfd_create failed with {_errname(e)}", "CONFIG_MEMFD_CREATE"),
                         details)
        raise
    if (before, after) != (1, 0):
        return Probe(False, f"a memfd page read present={before} before and present={after} after MADV_DONTNEED "
                            f"(expected 1, 0)", details)
    return Probe(True, f"{_categories_note()}: PAGE_IS_PRESENT; memfd page zapped by MADV_DONTNEED "
                       f"reads not present", details)


def probe_soft_dirty() -> Probe:
    reason = procfs.soft_dirty_unavailable()
    if reason:
        return Probe(False, reason, {})
    mask, _ = _categories()
    via_scan = "; PAGEMAP_SCAN PAGE_IS_SOFT_DIRTY accepted" if mask and mask & pagemap.PAGE_IS_SOFT_DIRTY else ""
    return Probe(True, f"clear_refs 4 then a write set pagemap bit 55 on a fresh page{via_scan}", {})


def probe_referenced() -> Probe:
    path = procfs.proc_path("clear_refs")
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CLOEXEC))  # opened, not written: value 1 ages shared pages
    except OSError as e:
        if e.errno == errno.ENOENT:
            return Probe(False, procfs.config_reason(f"no {path}", "CONFIG_PROC_PAGE_MONITOR"), {})
        return Probe(False, f"cannot open {path} for writing: {_errname(e)}", {})
    with _anon_page() as addr:
        referenced = procfs.smaps_field(addr, "Referenced")
    if referenced is None:
        return Probe(False, "/proc/self/smaps has no 'Referenced:' line for a mapped page", {})
    if referenced < PAGE_SIZE:
        return Probe(False, f"smaps Referenced is {referenced} B for a page just written (expected >= {PAGE_SIZE})", {})
    return Probe(True, f"{path} writable; smaps Referenced: {referenced // 1024} kB on a page just written", {})


def probe_mprotect() -> Probe:
    max_map_count = procfs.read_text(MAX_MAP_COUNT)
    details = {"max_map_count": int(max_map_count) if max_map_count and max_map_count.isdigit() else None}
    with _anon_page() as addr:
        libc.mprotect(addr, PAGE_SIZE, libc.PROT_NONE)
        libc.mprotect(addr, PAGE_SIZE, libc.PROT_READ | libc.PROT_WRITE)
    return Probe(True, f"mprotect(PROT_NONE) + SIGSEGV; vm.max_map_count {max_map_count} bounds scattered "
                       f"protections (each protected run splits a VMA)", details)


def probe_idle_page() -> Probe:
    reason = page_idle.probe()
    if reason:
        return Probe(False, reason, {})
    mask = mglru.enabled()
    details = {"lru_gen_enabled": mask}
    if mask is not None and mask & mglru.LRU_GEN_CORE:
        return Probe(True, f"{page_idle.PAGE_IDLE_BITMAP} opened; MGLRU is on (enabled {mask:#06x}): "
                           f"page_idle reports false idles under MGLRU", details)
    return Probe(True, f"{page_idle.PAGE_IDLE_BITMAP} opened; MGLRU "
                       f"{'off' if mask is not None else 'absent'}", details)


def probe_mglru() -> Probe:
    reason = mglru.probe()
    mask = mglru.enabled()
    details = {"enabled": mask}
    if reason:
        return Probe(False, reason, details)
    if not mask & mglru.LRU_GEN_CORE:
        return Probe(True, f"{mglru.LRU_GEN_ENABLED} {mask:#06x}: off (the mglru tracker turns it on for its run "
                           f"and restores it); {mglru.DEBUGFS_LRU_GEN} present", details)
    return Probe(True, f"{mglru.LRU_GEN_ENABLED} {mask:#06x}; {mglru.DEBUGFS_LRU_GEN} present", details)


def _damon(operations: str) -> Callable[[], Probe]:
    def run() -> Probe:
        reason = damon_sysfs.probe(operations)
        details = {"kdamonds": [k._asdict() for k in damon_sysfs.kdamonds_in_use()]}
        if reason:
            return Probe(False, reason, details)
        option = damon_sysfs.OPERATIONS_CONFIG[operations]
        source = ("listed in avail_operations" if damon_sysfs.avail_operations() is not None
                  else f"{option}={procfs.config_value(option)} (no context to read avail_operations from)")
        return Probe(True, f"DAMON sysfs: '{operations}' {source}; no kdamond in use", details)
    run.__name__ = run.__qualname__ = f"probe_damon_{operations}"
    return run


probe_damon_vaddr = _damon("vaddr")
probe_damon_paddr = _damon("paddr")

_cache: dict[str, Probe] = {}


def verdict(name: str, check: Callable[[], Probe]) -> Probe:
    """Mechanism *name*'s verdict from *check* (one of the ``probe_*`` functions above, or a
    plug-in's own), computed once per process; an OSError becomes the unavailable reason.

    Which check belongs to which mechanism is a fact of its tracker (``Tracker.kernel_probe``):
    ``bench.trackers.probe(name)`` and ``probe_all()`` look it up, this module names no mechanism.
    """
    if name not in _cache:
        try:
            _cache[name] = check()
        except OSError as e:
            _cache[name] = Probe(False, f"probe failed: {_failed(e)}", {"errno": e.errno})
    return _cache[name]


def clear_cache() -> None:
    """Forget every verdict and shared fact (tests; after changing privileges)."""
    _cache.clear()
    _uffd.cache_clear()
    _categories.cache_clear()


def raw_facts() -> dict:
    """The raw answers behind the verdicts, JSON-serialisable, for the results manifest."""
    info = _uffd()
    mask, why = _categories()
    config = procfs.kernel_config_text()
    uname = os.uname()
    damon = None
    if os.path.isdir(damon_sysfs.DAMON_ADMIN):
        damon = [k._asdict() for k in damon_sysfs.kdamonds_in_use()] if _root() else "needs root"
    max_map_count = procfs.read_text(MAX_MAP_COUNT)
    return {
        "uname": {"sysname": uname.sysname, "release": uname.release, "version": uname.version,
                  "machine": uname.machine},
        "root": _root(),
        "page_size": PAGE_SIZE,
        "uffd": {"features": info.features, "ioctls": info.ioctls, "via": info.via,
                 "errors": dict(info.errors)},
        "pagemap_scan_categories": mask,
        "pagemap_scan_error": why,
        "kernel_config": ({"source": config[1], "sha256": hashlib.sha256(config[0].encode()).hexdigest()}
                          if config else None),
        "thp": procfs.thp_mode(),
        "numa_balancing": procfs.read_text(NUMA_BALANCING),
        "lru_gen_enabled": mglru.enabled(),
        "damon_kdamonds": damon,
        "max_map_count": int(max_map_count) if max_map_count and max_map_count.isdigit() else None,
        "unprivileged_userfaultfd": procfs.read_text(UNPRIVILEGED_USERFAULTFD),
    }
