"""Keep the arena in a VMA of its own while a per-VMA mechanism reads it.

Since Linux 6.7 a ``MAP_STACK`` mapping gets ``VM_NOHUGEPAGE`` ("mm: mmap: map MAP_STACK to
VM_NOHUGEPAGE"), so a glibc thread stack created next to an anonymous arena (which carries
``MADV_NOHUGEPAGE``) has the same flags and the kernel merges the two VMAs. Observed here: a
workload thread's 8 MiB stack merged below a 64 MiB arena. Anything read per VMA then
covers the stack too: smaps ``Referenced`` counts its pages, and a freshly created stack
brings the VMA-level ``VM_SOFTDIRTY`` flag. ``MADV_DONTFORK`` (``dc`` in VmFlags) on exactly
the arena splits it from such a neighbour and keeps new ones from merging; it changes
nothing about access tracking or reclaim, only that a ``fork`` child does not inherit the
arena. ``release`` undoes it (the kernel may merge the neighbour back: as it was found).
"""

from __future__ import annotations

from bench.kernel import libc, procfs


def isolate(arena) -> bool:
    """Mark the arena ``MADV_DONTFORK`` unless it already is; True when this call did."""
    vma = procfs.smaps_vma(arena.addr) or {}
    if "dc" in vma.get("VmFlags", ()):
        return False
    libc.madvise(arena.addr, arena.size, libc.MADV_DONTFORK)
    return True


def release(arena, isolated: bool) -> None:
    """Undo ``isolate`` (``MADV_DOFORK``); a no-op when it did nothing or the arena is gone."""
    if isolated and arena is not None and arena.addr:
        try:
            libc.madvise(arena.addr, arena.size, libc.MADV_DOFORK)
        except OSError:  # unmapped under us: nothing left to restore
            pass
