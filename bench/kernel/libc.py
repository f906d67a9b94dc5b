"""The one ctypes door to libc: every entry point declared once, every failure an OSError.

Calls that fail return -1 and set errno; ``_check`` turns that into
``OSError(errno, strerror, what)`` where *what* names the request or path, so a
failure deep in a tracker still says which ioctl or file refused.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

c_void_p = ctypes.c_void_p
c_size_t = ctypes.c_size_t
c_int = ctypes.c_int
c_long = ctypes.c_long
c_ulong = ctypes.c_ulong

# asm-generic ioctl encoding (x86, arm64, riscv, s390): dir<<30 | size<<16 | type<<8 | nr.
_IOC_NONE, _IOC_WRITE, _IOC_READ = 0, 1, 2


def _IOC(direction: int, type_: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (type_ << 8) | nr


def _IO(type_: int, nr: int) -> int:
    return _IOC(_IOC_NONE, type_, nr, 0)


def _IOR(type_: int, nr: int, size: int) -> int:
    return _IOC(_IOC_READ, type_, nr, size)


def _IOW(type_: int, nr: int, size: int) -> int:
    return _IOC(_IOC_WRITE, type_, nr, size)


def _IOWR(type_: int, nr: int, size: int) -> int:
    return _IOC(_IOC_READ | _IOC_WRITE, type_, nr, size)


def _declare(name: str, restype, argtypes):
    fn = getattr(libc, name)
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


_syscall = _declare("syscall", c_long, [c_long, c_long])
_ioctl = _declare("ioctl", c_int, [c_int, c_ulong, c_void_p])
_mmap = _declare("mmap", c_void_p, [c_void_p, c_size_t, c_int, c_int, c_int, ctypes.c_long])
_munmap = _declare("munmap", c_int, [c_void_p, c_size_t])
_madvise = _declare("madvise", c_int, [c_void_p, c_size_t, c_int])
_mprotect = _declare("mprotect", c_int, [c_void_p, c_size_t, c_int])
_memfd_create = _declare("memfd_create", c_int, [ctypes.c_char_p, ctypes.c_uint])
_fallocate = _declare("fallocate", c_int, [c_int, c_int, ctypes.c_long, ctypes.c_long])
_mount = _declare("mount", c_int, [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, c_ulong, c_void_p])
_umount2 = _declare("umount2", c_int, [ctypes.c_char_p, c_int])
# syscall(2) with up to five arguments: a second function object, so the one-argument
# declaration above keeps its argtypes (getattr caches one object per name; indexing does not).
_syscall5 = libc["syscall"]
_syscall5.restype = c_long
_syscall5.argtypes = [c_long, c_long, c_long, c_long, c_long, c_long]

MAP_FAILED = ctypes.c_void_p(-1).value

# <sys/mman.h> / <asm-generic/mman-common.h>
PROT_NONE, PROT_READ, PROT_WRITE = 0x0, 0x1, 0x2
MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS = 0x01, 0x02, 0x20
MAP_NORESERVE, MAP_POPULATE, MAP_HUGETLB = 0x4000, 0x8000, 0x40000
MADV_DONTNEED, MADV_REMOVE = 4, 9
MADV_DONTFORK, MADV_DOFORK = 10, 11
MADV_HUGEPAGE, MADV_NOHUGEPAGE = 14, 15
MADV_POPULATE_READ, MADV_POPULATE_WRITE = 22, 23
MFD_CLOEXEC, MFD_HUGETLB = 0x0001, 0x0004
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 0x01, 0x02


def _check(result: int, what: str) -> int:
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), what)
    return result


def syscall(number: int, arg: int, what: str) -> int:
    return _check(_syscall(number, arg), what)


def syscall5(number: int, a: int, b: int, c: int, d: int, e: int, what: str) -> int:
    return _check(_syscall5(number, a, b, c, d, e), what)


def ioctl(fd: int, request: int, arg, what: str) -> int:
    """ioctl(2) with a ctypes structure (passed by reference), a buffer address, or 0."""
    ptr = ctypes.addressof(arg) if isinstance(arg, ctypes.Structure) else arg
    return _check(_ioctl(fd, request, ptr), what)


def mmap(length: int, prot: int, flags: int, fd: int = -1, offset: int = 0) -> int:
    addr = _mmap(None, length, prot, flags, fd, offset)
    if addr in (None, MAP_FAILED):
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), f"mmap({length} bytes, flags={flags:#x})")
    return addr


def munmap(addr: int, length: int) -> None:
    _check(_munmap(addr, length), f"munmap({addr:#x}, {length})")


def madvise(addr: int, length: int, advice: int) -> None:
    _check(_madvise(addr, length, advice), f"madvise({addr:#x}, {length}, {advice})")


def mprotect(addr: int, length: int, prot: int) -> None:
    _check(_mprotect(addr, length, prot), f"mprotect({addr:#x}, {length}, {prot})")


def memfd_create(name: str, flags: int) -> int:
    return _check(_memfd_create(name.encode(), flags), f"memfd_create({name!r})")


def mount(source: str, target: str, fstype: str, flags: int = 0) -> None:
    _check(_mount(source.encode(), target.encode(), fstype.encode(), flags, None), f"mount -t {fstype} {target}")


def umount2(target: str, flags: int = 0) -> None:
    _check(_umount2(target.encode(), flags), f"umount {target}")


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    _check(_fallocate(fd, mode, offset, length), f"fallocate(mode={mode:#x})")
