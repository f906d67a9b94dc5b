"""userfaultfd(2) as in include/uapi/linux/userfaultfd.h (Documentation/admin-guide/mm/userfaultfd.rst).

Covers the upstream ABI up to and including the read-write-protect (RWP) mode merged
for Linux 7.3 ("userfaultfd: working set tracking for VM guest memory", v10; first
release 7.3). The April-2026 RFC generation reuses feature bits 17/18 and ioctl nr
0x09 with other meanings; its names live apart in ``uffd_rfc.py`` and must never be
mixed with the RWP names here.

Failures: every call raises ``OSError`` naming the ioctl. ``UFFDIO_API`` may be called
once per fd and fails with EINVAL for any unsupported feature bit (the struct comes
back zeroed, so the error path tells nothing): probe with a throw-away fd first.
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass

import numpy as np

from bench.kernel import libc
from bench.kernel.libc import _IO, _IOR, _IOW, _IOWR

__all__ = [
    "UFFD_API", "UFFD_USER_MODE_ONLY", "Userfaultfd", "api_features", "UffdFeatures",
    "uffd_msg_dtype",
]

__NR_userfaultfd = {"x86_64": 323, "aarch64": 282, "riscv64": 282, "loongarch64": 282}.get(os.uname().machine, 323)
UFFD_API = 0xAA
UFFDIO = 0xAA
UFFD_USER_MODE_ONLY = 1
USERFAULTFD_IOC_NEW = _IO(UFFDIO, 0x00)


class uffdio_range(ctypes.Structure):
    _fields_ = [("start", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class uffdio_api(ctypes.Structure):
    _fields_ = [("api", ctypes.c_uint64), ("features", ctypes.c_uint64), ("ioctls", ctypes.c_uint64)]


class uffdio_register(ctypes.Structure):
    _fields_ = [("range", uffdio_range), ("mode", ctypes.c_uint64), ("ioctls", ctypes.c_uint64)]


class uffdio_copy(ctypes.Structure):
    _fields_ = [("dst", ctypes.c_uint64), ("src", ctypes.c_uint64), ("len", ctypes.c_uint64),
                ("mode", ctypes.c_uint64), ("copy", ctypes.c_int64)]


class uffdio_zeropage(ctypes.Structure):
    _fields_ = [("range", uffdio_range), ("mode", ctypes.c_uint64), ("zeropage", ctypes.c_int64)]


class uffdio_writeprotect(ctypes.Structure):
    _fields_ = [("range", uffdio_range), ("mode", ctypes.c_uint64)]


class uffdio_continue(ctypes.Structure):
    _fields_ = [("range", uffdio_range), ("mode", ctypes.c_uint64), ("mapped", ctypes.c_int64)]


# 7.3: same layout as uffdio_writeprotect.
class uffdio_rwprotect(ctypes.Structure):
    _fields_ = [("range", uffdio_range), ("mode", ctypes.c_uint64)]


# 7.3 (and the RFC, with other toggleable bits).
class uffdio_set_mode(ctypes.Structure):
    _fields_ = [("enable", ctypes.c_uint64), ("disable", ctypes.c_uint64)]


# ioctl nr bits (_UFFDIO_*) as reported in uffdio_api.ioctls / uffdio_register.ioctls
_UFFDIO_REGISTER, _UFFDIO_UNREGISTER, _UFFDIO_WAKE, _UFFDIO_COPY = 0x00, 0x01, 0x02, 0x03
_UFFDIO_ZEROPAGE, _UFFDIO_MOVE, _UFFDIO_WRITEPROTECT, _UFFDIO_CONTINUE = 0x04, 0x05, 0x06, 0x07
_UFFDIO_POISON = 0x08
_UFFDIO_RWPROTECT = 0x09  # 7.3; the RFC's _UFFDIO_DEACTIVATE has the same nr
_UFFDIO_SET_MODE = 0x0A
_UFFDIO_API = 0x3F

UFFDIO_API = _IOWR(UFFDIO, _UFFDIO_API, ctypes.sizeof(uffdio_api))
UFFDIO_REGISTER = _IOWR(UFFDIO, _UFFDIO_REGISTER, ctypes.sizeof(uffdio_register))
UFFDIO_UNREGISTER = _IOR(UFFDIO, _UFFDIO_UNREGISTER, ctypes.sizeof(uffdio_range))
UFFDIO_WAKE = _IOR(UFFDIO, _UFFDIO_WAKE, ctypes.sizeof(uffdio_range))
UFFDIO_COPY = _IOWR(UFFDIO, _UFFDIO_COPY, ctypes.sizeof(uffdio_copy))
UFFDIO_ZEROPAGE = _IOWR(UFFDIO, _UFFDIO_ZEROPAGE, ctypes.sizeof(uffdio_zeropage))
UFFDIO_WRITEPROTECT = _IOWR(UFFDIO, _UFFDIO_WRITEPROTECT, ctypes.sizeof(uffdio_writeprotect))
UFFDIO_CONTINUE = _IOWR(UFFDIO, _UFFDIO_CONTINUE, ctypes.sizeof(uffdio_continue))
UFFDIO_RWPROTECT = _IOWR(UFFDIO, _UFFDIO_RWPROTECT, ctypes.sizeof(uffdio_rwprotect))
UFFDIO_SET_MODE = _IOW(UFFDIO, _UFFDIO_SET_MODE, ctypes.sizeof(uffdio_set_mode))

UFFDIO_REGISTER_MODE_MISSING = 1 << 0
UFFDIO_REGISTER_MODE_WP = 1 << 1
UFFDIO_REGISTER_MODE_MINOR = 1 << 2
UFFDIO_REGISTER_MODE_RWP = 1 << 3  # 7.3; not combinable with MODE_WP

UFFDIO_COPY_MODE_DONTWAKE = 1 << 0
UFFDIO_COPY_MODE_WP = 1 << 1
UFFDIO_WRITEPROTECT_MODE_WP = 1 << 0
UFFDIO_WRITEPROTECT_MODE_DONTWAKE = 1 << 1
UFFDIO_CONTINUE_MODE_DONTWAKE = 1 << 0
UFFDIO_CONTINUE_MODE_WP = 1 << 1
UFFDIO_RWPROTECT_MODE_RWP = 1 << 0  # set = protect, clear = resolve/unprotect
UFFDIO_RWPROTECT_MODE_DONTWAKE = 1 << 1

UFFD_FEATURE_PAGEFAULT_FLAG_WP = 1 << 0
UFFD_FEATURE_EVENT_FORK = 1 << 1
UFFD_FEATURE_EVENT_REMAP = 1 << 2
UFFD_FEATURE_EVENT_REMOVE = 1 << 3
UFFD_FEATURE_MISSING_HUGETLBFS = 1 << 4
UFFD_FEATURE_MISSING_SHMEM = 1 << 5
UFFD_FEATURE_EVENT_UNMAP = 1 << 6
UFFD_FEATURE_SIGBUS = 1 << 7
UFFD_FEATURE_THREAD_ID = 1 << 8
UFFD_FEATURE_MINOR_HUGETLBFS = 1 << 9
UFFD_FEATURE_MINOR_SHMEM = 1 << 10
UFFD_FEATURE_EXACT_ADDRESS = 1 << 11
UFFD_FEATURE_WP_HUGETLBFS_SHMEM = 1 << 12
UFFD_FEATURE_WP_UNPOPULATED = 1 << 13
UFFD_FEATURE_POISON = 1 << 14
UFFD_FEATURE_WP_ASYNC = 1 << 15
UFFD_FEATURE_MOVE = 1 << 16
# Linux 7.3, "userfaultfd: working set tracking for VM guest memory" (v10).
UFFD_FEATURE_RWP = 1 << 17
UFFD_FEATURE_RWP_ASYNC = 1 << 18  # requires UFFD_FEATURE_RWP in the same UFFDIO_API call

UFFD_EVENT_PAGEFAULT, UFFD_EVENT_FORK, UFFD_EVENT_REMAP = 0x12, 0x13, 0x14
UFFD_EVENT_REMOVE, UFFD_EVENT_UNMAP = 0x15, 0x16
UFFD_PAGEFAULT_FLAG_WRITE = 1 << 0
UFFD_PAGEFAULT_FLAG_WP = 1 << 1
UFFD_PAGEFAULT_FLAG_MINOR = 1 << 2
UFFD_PAGEFAULT_FLAG_RWP = 1 << 3  # 7.3

# struct uffd_msg is packed, 32 bytes; for PAGEFAULT: flags @8, address @16, feat.ptid @24.
uffd_msg_dtype = np.dtype({
    "names": ["event", "flags", "address", "ptid"],
    "formats": ["u1", "<u8", "<u8", "<u4"],
    "offsets": [0, 8, 16, 24],
    "itemsize": 32,
})


@dataclass(frozen=True)
class UffdFeatures:
    """What ``UFFDIO_API`` with ``features=0`` said: every feature and fd-level ioctl the kernel has."""

    features: int
    ioctls: int
    via: str  # "syscall" or "/dev/userfaultfd"

    def has(self, bits: int) -> bool:
        return self.features & bits == bits


def _open_fd(flags: int) -> tuple[int, str]:
    """A new userfaultfd: the syscall first, else /dev/userfaultfd (6.1+, gated by file mode only)."""
    try:
        return libc.syscall(__NR_userfaultfd, flags, "userfaultfd(2)"), "syscall"
    except OSError as syscall_err:
        try:
            dev = os.open("/dev/userfaultfd", os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            raise syscall_err from None
        try:
            return libc.ioctl(dev, USERFAULTFD_IOC_NEW, flags, "USERFAULTFD_IOC_NEW"), "/dev/userfaultfd"
        finally:
            os.close(dev)


def api_features() -> UffdFeatures:
    """Probe: open a throw-away fd and read the kernel's full feature mask (raises OSError if no uffd)."""
    fd, via = _open_fd(os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        api = uffdio_api(api=UFFD_API, features=0)
        libc.ioctl(fd, UFFDIO_API, api, "UFFDIO_API")
        return UffdFeatures(api.features, api.ioctls, via)
    finally:
        os.close(fd)


class Userfaultfd:
    """One userfaultfd context after a successful ``UFFDIO_API`` handshake.

    Not ``UFFD_USER_MODE_ONLY``: a VMM must also see kernel-mode faults (KVM's GUP).
    ``close()`` is idempotent; closing unregisters every range and drops every marker.
    """

    def __init__(self, features: int, *, nonblock: bool = True):
        flags = os.O_CLOEXEC | (os.O_NONBLOCK if nonblock else 0)
        self.fd, self.via = _open_fd(flags)
        try:
            api = uffdio_api(api=UFFD_API, features=features)
            libc.ioctl(self.fd, UFFDIO_API, api, f"UFFDIO_API(features={features:#x})")
        except BaseException:
            os.close(self.fd)
            self.fd = -1
            raise
        self.features = api.features
        self.ioctls = api.ioctls

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Userfaultfd:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def register(self, start: int, length: int, mode: int) -> int:
        """``UFFDIO_REGISTER``; returns the range-ioctl mask the kernel allows on it."""
        reg = uffdio_register(range=uffdio_range(start, length), mode=mode)
        libc.ioctl(self.fd, UFFDIO_REGISTER, reg, f"UFFDIO_REGISTER(mode={mode:#x})")
        return reg.ioctls

    def unregister(self, start: int, length: int) -> None:
        libc.ioctl(self.fd, UFFDIO_UNREGISTER, uffdio_range(start, length), "UFFDIO_UNREGISTER")

    def wake(self, start: int, length: int) -> None:
        libc.ioctl(self.fd, UFFDIO_WAKE, uffdio_range(start, length), "UFFDIO_WAKE")

    def writeprotect(self, start: int, length: int, protect: bool, *, dontwake: bool = False) -> None:
        mode = (UFFDIO_WRITEPROTECT_MODE_WP if protect else 0) | (UFFDIO_WRITEPROTECT_MODE_DONTWAKE if dontwake else 0)
        arg = uffdio_writeprotect(range=uffdio_range(start, length), mode=mode)
        libc.ioctl(self.fd, UFFDIO_WRITEPROTECT, arg, "UFFDIO_WRITEPROTECT")

    def continue_(self, start: int, length: int, mode: int = 0) -> int:
        """``UFFDIO_CONTINUE``: map the page-cache pages of a MINOR fault; returns bytes mapped."""
        arg = uffdio_continue(range=uffdio_range(start, length), mode=mode)
        try:
            libc.ioctl(self.fd, UFFDIO_CONTINUE, arg, "UFFDIO_CONTINUE")
        except OSError as e:
            if e.errno != errno.EEXIST:  # already mapped by a racing fault: fine
                raise
        return arg.mapped

    def copy(self, dst: int, src: int, length: int, mode: int = 0) -> int:
        """``UFFDIO_COPY``; the kernel reports bytes copied (or -errno) in the struct itself."""
        arg = uffdio_copy(dst=dst, src=src, len=length, mode=mode)
        try:
            libc.ioctl(self.fd, UFFDIO_COPY, arg, "UFFDIO_COPY")
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise
        return arg.copy

    def rwprotect(self, start: int, length: int, protect: bool, *, dontwake: bool = False) -> None:
        """7.3 ``UFFDIO_RWPROTECT``: arm (protect) or resolve (unprotect and wake) a range."""
        mode = (UFFDIO_RWPROTECT_MODE_RWP if protect else 0) | (UFFDIO_RWPROTECT_MODE_DONTWAKE if dontwake else 0)
        arg = uffdio_rwprotect(range=uffdio_range(start, length), mode=mode)
        libc.ioctl(self.fd, UFFDIO_RWPROTECT, arg, "UFFDIO_RWPROTECT")

    def set_mode(self, enable: int = 0, disable: int = 0) -> None:
        """``UFFDIO_SET_MODE``: flip toggleable features (7.3: only ``UFFD_FEATURE_RWP_ASYNC``)."""
        libc.ioctl(self.fd, UFFDIO_SET_MODE, uffdio_set_mode(enable, disable), "UFFDIO_SET_MODE")

    def read_messages(self, buf: np.ndarray) -> np.ndarray:
        """Read pending ``struct uffd_msg``s into *buf* (dtype ``uffd_msg_dtype``); empty when none."""
        try:
            n = os.readv(self.fd, [memoryview(buf.view(np.uint8))])
        except BlockingIOError:
            return buf[:0]
        return buf[: n // uffd_msg_dtype.itemsize]
