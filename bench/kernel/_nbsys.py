"""libc entry points callable from numba ``nogil`` code (fault handlers, signal handlers).

Bound by symbol name (``types.ExternalFunction``) rather than by ctypes pointer, so the
compiled functions that use them can be cached on disk.
"""

from __future__ import annotations

import ctypes.util

import llvmlite.binding as llvm
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

llvm.load_library_permanently(ctypes.util.find_library("c") or "libc.so.6")

read = types.ExternalFunction("read", types.intp(types.int32, types.voidptr, types.uintp))
poll = types.ExternalFunction("poll", types.int32(types.voidptr, types.uint64, types.int32))
ioctl = types.ExternalFunction("ioctl", types.int32(types.int32, types.uint64, types.voidptr))
mprotect = types.ExternalFunction("mprotect", types.int32(types.voidptr, types.uintp, types.int32))
# Added for the eviction workflow (bench/evict.py): write-out, drop, handler acknowledgements, timestamps.
write = types.ExternalFunction("write", types.intp(types.int32, types.voidptr, types.uintp))
pwrite = types.ExternalFunction("pwrite", types.intp(types.int32, types.voidptr, types.uintp, types.int64))
fallocate = types.ExternalFunction("fallocate", types.int32(types.int32, types.int32, types.int64, types.int64))
madvise = types.ExternalFunction("madvise", types.int32(types.voidptr, types.uintp, types.int32))
clock_gettime = types.ExternalFunction("clock_gettime", types.int32(types.int32, types.voidptr))


@intrinsic
def voidptr(typingctx, address):
    """An integer address (``arr.ctypes.data``) as ``void *`` for the externals above."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)
    return types.voidptr(types.uintp), codegen
