"""SIGSEGV handling as glibc's sigaction(2) wrapper and the x86_64 kernel deliver it.

Headers: glibc ``<bits/sigaction.h>`` (``struct sigaction`` as the wrapper takes it),
``<bits/types/siginfo_t.h>``, ``<sys/ucontext.h>`` (``REG_ERR``, ``REG_TRAPNO``, ``REG_CR2``);
the kernel's ``include/uapi/asm-generic/siginfo.h`` (``SEGV_*``),
``arch/x86/include/uapi/asm/signal.h`` (``SA_*``, the 64-bit ``sigset_t`` of
``rt_sigaction``), ``arch/x86/include/asm/trap_pf.h`` (page-fault error code bits) and
``arch/x86/entry/syscalls/syscall_64.tbl``. Documentation: man sigaction(2), signal(7),
signal-safety(7).

x86_64 only: the ``ucontext_t`` layout, the fault error code in ``gregs[REG_ERR]`` and the
syscall numbers are this architecture's; ``probe()`` names any other machine as the
reason, so callers are unavailable rather than wrong there.

Failures: ``sigaction`` raises ``OSError`` (EINVAL for an invalid or uncatchable signal,
EFAULT for a bad pointer) naming the signal. A signal handler cannot raise, so the raw
syscalls it makes (``__NR_*`` below) return ``-errno`` in ``rax`` and leave the
interrupted thread's ``errno`` alone — why handlers should use them instead of libc.
"""

from __future__ import annotations

import ctypes
import os

from bench.kernel import libc

__all__ = [
    "SIGSEGV", "SIG_DFL", "SIG_IGN", "SA_SIGINFO", "SA_ONSTACK", "SA_RESTART", "SA_NODEFER",
    "SA_RESETHAND", "SA_RESTORER", "SEGV_MAPERR", "SEGV_ACCERR", "REG_ERR", "REG_TRAPNO", "REG_CR2",
    "X86_PF_PROT", "X86_PF_WRITE", "X86_PF_USER", "X86_PF_INSTR", "X86_TRAP_PF",
    "SIGINFO_SI_CODE", "SIGINFO_SI_ADDR", "UCONTEXT_REG_ERR", "UCONTEXT_REG_TRAPNO", "UCONTEXT_REG_CR2",
    "struct_sigaction", "kernel_sigaction", "siginfo_t", "ucontext_t", "sigaction", "probe",
]

SIGSEGV = 11
SIG_DFL, SIG_IGN = 0, 1

# sa_flags (arch/x86/include/uapi/asm/signal.h, asm-generic/signal-defs.h)
SA_SIGINFO = 0x00000004
SA_RESTORER = 0x04000000  # glibc adds it, with its own __restore_rt, to every action it installs
SA_ONSTACK = 0x08000000
SA_RESTART = 0x10000000
SA_NODEFER = 0x40000000
SA_RESETHAND = 0x80000000

# si_code for SIGSEGV (asm-generic/siginfo.h); <= 0 means sent by a process (SI_USER 0, SI_TKILL -6)
SEGV_MAPERR, SEGV_ACCERR = 1, 2

# <sys/ucontext.h> gregs indices (x86_64)
REG_ERR, REG_TRAPNO, REG_CR2 = 19, 20, 22
NGREG = 23

# enum x86_pf_error_code (arch/x86/include/asm/trap_pf.h): the page-fault error code in REG_ERR
X86_PF_PROT = 1 << 0   # 0: page not present (a PROT_NONE PTE counts as not present), 1: protection
X86_PF_WRITE = 1 << 1  # the access was a write
X86_PF_USER = 1 << 2
X86_PF_INSTR = 1 << 4
X86_TRAP_PF = 14  # REG_TRAPNO of a page fault

# Raw syscalls an async-signal-safe handler makes (syscall_64.tbl; x86_64 numbers)
__NR_mprotect = 10
__NR_rt_sigaction = 13
__NR_getpid = 39
__NR_gettid = 186
__NR_tgkill = 234


class sigset_t(ctypes.Structure):  # glibc's: 1024 bits
    _fields_ = [("__val", ctypes.c_ulong * 16)]


class struct_sigaction(ctypes.Structure):
    """glibc's ``struct sigaction`` (152 bytes on x86_64): what the ``sigaction()`` wrapper takes.

    ``sa_handler`` is the union of ``sa_handler`` and ``sa_sigaction`` (which one the kernel
    calls depends on ``SA_SIGINFO``); SIG_DFL and SIG_IGN read as 0 and 1.
    """

    _fields_ = [("sa_handler", ctypes.c_void_p), ("sa_mask", sigset_t), ("sa_flags", ctypes.c_int),
                ("sa_restorer", ctypes.c_void_p)]

    @property
    def handler(self) -> int:
        return self.sa_handler or SIG_DFL

    @property
    def kernel_mask(self) -> int:
        """The 64 signals the kernel keeps. A query fills the other 120 bytes of ``sa_mask`` with
        whatever was on glibc's stack (it copies ``sizeof(sigset_t)`` from its 8-byte kernel copy)."""
        return getattr(self.sa_mask, "__val")[0]  # getattr: no name mangling

    def same_as(self, other: struct_sigaction) -> bool:
        """Same action as far as the kernel is concerned: handler, flags, restorer, 64-bit mask."""
        return (self.handler, self.sa_flags, self.sa_restorer, self.kernel_mask) == \
            (other.handler, other.sa_flags, other.sa_restorer, other.kernel_mask)


class kernel_sigaction(ctypes.Structure):
    """The kernel's ``struct sigaction`` for ``rt_sigaction`` on x86_64 (32 bytes, 64-bit mask).

    glibc's internal name (sysdeps/unix/sysv/linux/kernel_sigaction.h). Only a signal
    handler needs it: it re-installs an action with a raw syscall, not through libc.
    """

    _fields_ = [("k_sa_handler", ctypes.c_void_p), ("sa_flags", ctypes.c_ulong),
                ("sa_restorer", ctypes.c_void_p), ("sa_mask", ctypes.c_ulong)]

    @classmethod
    def from_libc(cls, sa: struct_sigaction) -> kernel_sigaction:
        """What glibc's ``sigaction()`` would pass to the kernel for *sa*, as returned by a query.

        A queried action already carries the kernel's ``SA_RESTORER`` and restorer; the int
        ``sa_flags`` is sign-extended to unsigned long, as glibc's conversion does.
        """
        return cls(sa.sa_handler, ctypes.c_ulong(sa.sa_flags).value, sa.sa_restorer, sa.kernel_mask)


class siginfo_t(ctypes.Structure):
    """The head of ``siginfo_t`` (128 bytes in all); ``si_addr`` is the faulting address for SIGSEGV."""

    _fields_ = [("si_signo", ctypes.c_int), ("si_errno", ctypes.c_int), ("si_code", ctypes.c_int),
                ("__pad0", ctypes.c_int), ("si_addr", ctypes.c_void_p)]


class stack_t(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


class mcontext_t(ctypes.Structure):
    _fields_ = [("gregs", ctypes.c_longlong * NGREG), ("fpregs", ctypes.c_void_p),
                ("__reserved1", ctypes.c_ulonglong * 8)]


class ucontext_t(ctypes.Structure):
    """The head of the x86_64 ``ucontext_t`` the kernel passes as a SA_SIGINFO handler's 3rd argument."""

    _fields_ = [("uc_flags", ctypes.c_ulong), ("uc_link", ctypes.c_void_p), ("uc_stack", stack_t),
                ("uc_mcontext", mcontext_t)]


def _greg_offset(reg: int) -> int:
    return ucontext_t.uc_mcontext.offset + mcontext_t.gregs.offset + reg * ctypes.sizeof(ctypes.c_longlong)


# Byte offsets a compiled handler reads (16, 8; 192, 200, 216): checked against gcc's offsetof
# and against live faults in tests/trackers/test_mprotect.py.
SIGINFO_SI_CODE = siginfo_t.si_code.offset
SIGINFO_SI_ADDR = siginfo_t.si_addr.offset
UCONTEXT_REG_ERR = _greg_offset(REG_ERR)
UCONTEXT_REG_TRAPNO = _greg_offset(REG_TRAPNO)
UCONTEXT_REG_CR2 = _greg_offset(REG_CR2)

_sigaction = libc._declare("sigaction", libc.c_int,
                            [libc.c_int, ctypes.POINTER(struct_sigaction), ctypes.POINTER(struct_sigaction)])


def sigaction(signum: int, new: struct_sigaction | None = None) -> struct_sigaction:
    """sigaction(2): install *new* (if given) for *signum*; return the action that was in place."""
    old = struct_sigaction()
    libc._check(_sigaction(signum, ctypes.byref(new) if new is not None else None, ctypes.byref(old)),
                 f"sigaction({signum})")
    return old


def probe() -> str | None:
    """None when the layouts above are this machine's (x86_64 Linux), else the reason."""
    machine = os.uname().machine
    if os.uname().sysname != "Linux" or machine != "x86_64":
        return (f"signal-handler ABI (ucontext_t gregs[REG_ERR], syscall numbers) is only defined "
                f"for x86_64 Linux here, not {os.uname().sysname} {machine}")
    if ctypes.sizeof(struct_sigaction) != 152:
        return f"unexpected libc struct sigaction size {ctypes.sizeof(struct_sigaction)} (glibc x86_64: 152)"
    return None
