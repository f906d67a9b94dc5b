"""The numba side of the kernel ABI, defined once: libc entry points, raw syscalls, relaxed
atomics, clocks and pointers for ``nogil`` code (fault servers, signal handlers, workloads).

libc functions are bound by symbol name (``types.ExternalFunction``) rather than by ctypes
pointer, and a JIT symbol (``external_global``) stands for a per-process address, so the
compiled functions that use them hold no address of this process and can be cached on disk.

Atomics are LLVM "monotonic" (C11 ``memory_order_relaxed``, the kernel's ``READ_ONCE`` /
``WRITE_ONCE`` for aligned words): a flag another thread writes is read anew on every pass of
a polling loop, never hoisted out of it, and counters bumped by concurrent threads lose nothing.
"""

from __future__ import annotations

import ctypes.util

import llvmlite.binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["read", "poll", "ioctl", "mprotect", "write", "pwrite", "fallocate", "madvise", "clock_gettime",
           "CLOCK_MONOTONIC", "monotonic_ns", "voidptr", "address", "load_i32", "atomic_load", "atomic_store",
           "atomic_add", "atomic_or_u8", "syscall4", "external_global"]

llvm.load_library_permanently(ctypes.util.find_library("c") or "libc.so.6")
llvm.initialize_native_asmparser()  # numba does not, and syscall4's inline asm needs it

CLOCK_MONOTONIC = 1  # include/uapi/linux/time.h: the clock of time.monotonic_ns()
_I8, _I32, _I64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)

read = types.ExternalFunction("read", types.intp(types.int32, types.voidptr, types.uintp))
poll = types.ExternalFunction("poll", types.int32(types.voidptr, types.uint64, types.int32))
ioctl = types.ExternalFunction("ioctl", types.int32(types.int32, types.uint64, types.voidptr))
mprotect = types.ExternalFunction("mprotect", types.int32(types.voidptr, types.uintp, types.int32))
# Added for the eviction workflow (bench/evict/): write-out, drop, handler acknowledgements, timestamps.
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


@intrinsic
def address(typingctx, ptr):
    """A ``void *`` (a cfunc's pointer argument) as an int64 address."""
    def codegen(context, builder, signature, args):
        return builder.ptrtoint(args[0], _I64)
    return types.int64(types.voidptr), codegen


@intrinsic
def load_i32(typingctx, addr):
    """The int32 at *addr* (a plain load: a field of a struct the kernel filled, e.g. siginfo)."""
    def codegen(context, builder, signature, args):
        return builder.load(builder.inttoptr(args[0], _I32.as_pointer()))
    return types.int32(types.int64), codegen


@intrinsic
def atomic_load(typingctx, addr):
    """Relaxed atomic load of the int64 at *addr* (written by another thread or a signal handler)."""
    def codegen(context, builder, signature, args):
        return builder.load_atomic(builder.inttoptr(args[0], _I64.as_pointer()), "monotonic", 8)
    return types.int64(types.int64), codegen


@intrinsic
def atomic_store(typingctx, addr, value):
    """Relaxed atomic store of int64 *value* at *addr*."""
    def codegen(context, builder, signature, args):
        builder.store_atomic(args[1], builder.inttoptr(args[0], _I64.as_pointer()), "monotonic", 8)
        return context.get_dummy_value()
    return types.none(types.int64, types.int64), codegen


@intrinsic
def atomic_add(typingctx, addr, value):
    """Relaxed atomic ``*addr += value`` on an int64; returns the old value."""
    def codegen(context, builder, signature, args):
        return builder.atomic_rmw("add", builder.inttoptr(args[0], _I64.as_pointer()), args[1], "monotonic")
    return types.int64(types.int64, types.int64), codegen


@intrinsic
def atomic_or_u8(typingctx, addr, value):
    """Relaxed atomic ``*addr |= value`` on a uint8 (a per-page mark)."""
    def codegen(context, builder, signature, args):
        bits = builder.trunc(args[1], _I8)
        builder.atomic_rmw("or", builder.inttoptr(args[0], _I8.as_pointer()), bits, "monotonic")
        return context.get_dummy_value()
    return types.none(types.int64, types.int64), codegen


@intrinsic
def syscall4(typingctx, nr, a1, a2, a3, a4):
    """x86_64 ``syscall`` instruction inline: result in rax, -errno on failure (no libc, so no
    ``errno`` of the interrupted thread is clobbered: async-signal-safe); the kernel clobbers rcx
    and r11. *nr* is a ``__NR_*`` of ``bench.kernel.signals``."""
    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(_I64, [_I64] * 5)
        return builder.asm(fnty, "syscall", "={rax},{rax},{rdi},{rsi},{rdx},{r10},~{rcx},~{r11},~{memory}",
                           args, side_effect=True)
    return types.int64(types.int64, types.int64, types.int64, types.int64, types.int64), codegen


def external_global(symbol: str):
    """An intrinsic returning the address of JIT symbol *symbol* (``llvm.add_symbol``) as an int64:
    an external global resolved when the code is loaded, so the compiled code holds no address of
    this process. Assign it to a module global of the caller (numba keys its disk cache on the
    pickled closure, which a closure cell would make differ per process)."""
    @intrinsic
    def symbol_address(typingctx):
        def codegen(context, builder, signature, args):
            gv = builder.module.globals.get(symbol)
            if gv is None:
                gv = ir.GlobalVariable(builder.module, _I64, symbol)
                gv.linkage = "external"
            return builder.ptrtoint(gv, _I64)
        return types.int64(), codegen
    return symbol_address


@njit(nogil=True, cache=True)
def monotonic_ns(ts):
    """``clock_gettime(CLOCK_MONOTONIC)`` in ns, as ``time.monotonic_ns()``; *ts* an int64[2] scratch."""
    clock_gettime(CLOCK_MONOTONIC, voidptr(ts.ctypes.data))
    return ts[0] * 1_000_000_000 + ts[1]
