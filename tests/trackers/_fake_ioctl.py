"""A recording stand-in for the ctypes door (``bench.kernel.libc.ioctl`` / ``.syscall``), to check
the exact ioctls a tracker issues — numbers, struct contents, order — without a kernel that
implements them. It answers like the documented ABI would (UFFDIO_API grants what was asked,
PAGEMAP_SCAN returns the regions the test chose) but proves nothing about a live kernel.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field

import numpy as np

from bench.kernel import libc, pagemap, uffd, uffd_rfc

NAMES = {
    uffd.UFFDIO_API: "UFFDIO_API", uffd.UFFDIO_REGISTER: "UFFDIO_REGISTER",
    uffd.UFFDIO_UNREGISTER: "UFFDIO_UNREGISTER", uffd.UFFDIO_WAKE: "UFFDIO_WAKE",
    uffd.UFFDIO_CONTINUE: "UFFDIO_CONTINUE", uffd.UFFDIO_RWPROTECT: "UFFDIO_RWPROTECT",
    uffd.UFFDIO_SET_MODE: "UFFDIO_SET_MODE", uffd_rfc.UFFDIO_DEACTIVATE: "UFFDIO_DEACTIVATE",
    pagemap.PAGEMAP_SCAN: "PAGEMAP_SCAN",
}
_STRUCTS = {
    "UFFDIO_API": uffd.uffdio_api, "UFFDIO_REGISTER": uffd.uffdio_register, "UFFDIO_UNREGISTER": uffd.uffdio_range,
    "UFFDIO_WAKE": uffd.uffdio_range, "UFFDIO_CONTINUE": uffd.uffdio_continue,
    "UFFDIO_RWPROTECT": uffd.uffdio_rwprotect, "UFFDIO_SET_MODE": uffd.uffdio_set_mode,
    "UFFDIO_DEACTIVATE": uffd.uffdio_range, "PAGEMAP_SCAN": pagemap.pm_scan_arg,
}


def _fields(struct) -> dict:
    out = {}
    for name, ctype in struct._fields_:
        value = getattr(struct, name)
        out.update({f"{name}.{k}": v for k, v in _fields(value).items()} if isinstance(value, ctypes.Structure)
                   else {name: value})
    return out


@dataclass
class Call:
    name: str
    request: int
    fd: int
    args: dict  # the struct's fields as passed in (before the fake fills outputs)
    size: int


@dataclass
class FakeKernel:
    """Install with ``install(monkeypatch)``; ``calls`` records every ioctl in order."""

    granted_features: int
    range_ioctls: int = 0
    scan_regions: list = field(default_factory=list)  # (start, end, categories) answered by PAGEMAP_SCAN
    calls: list = field(default_factory=list)
    syscalls: list = field(default_factory=list)
    fds: list = field(default_factory=list)

    def install(self, monkeypatch) -> FakeKernel:
        monkeypatch.setattr(libc, "ioctl", self.ioctl)
        monkeypatch.setattr(libc, "syscall", self.syscall)
        return self

    def syscall(self, number, arg, what):
        self.syscalls.append((number, arg, what))
        fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)  # stands for the userfaultfd
        self.fds.append(fd)
        return fd

    def ioctl(self, fd, request, arg, what):
        name = NAMES.get(request, hex(request))
        struct = arg if isinstance(arg, ctypes.Structure) else None
        assert struct is not None and isinstance(struct, _STRUCTS[name]), (name, type(arg))
        self.calls.append(Call(name, request, fd, _fields(struct), ctypes.sizeof(struct)))
        if name == "UFFDIO_API":
            struct.features = self.granted_features
            struct.ioctls = (1 << uffd._UFFDIO_REGISTER) | (1 << uffd._UFFDIO_UNREGISTER) | (1 << uffd._UFFDIO_API)
        elif name == "UFFDIO_REGISTER":
            struct.ioctls = self.range_ioctls
        elif name == "PAGEMAP_SCAN":
            n = min(len(self.scan_regions), struct.vec_len)
            if n:
                buf = (ctypes.c_uint8 * (n * pagemap.page_region_dtype.itemsize)).from_address(struct.vec)
                vec = np.frombuffer(buf, dtype=pagemap.page_region_dtype)
                vec[:] = self.scan_regions[:n]
            struct.walk_end = struct.end
            return n
        return 0

    def named(self, *names) -> list[Call]:
        return [c for c in self.calls if c.name in names]
