"""Multi-Gen LRU: /sys/kernel/mm/lru_gen and debugfs lru_gen
(Documentation/admin-guide/mm/multigen_lru.rst, Documentation/mm/multigen_lru.rst).

``CONFIG_LRU_GEN`` (``CONFIG_LRU_GEN_ENABLED`` sets the boot default, ``CONFIG_LRU_GEN_STATS``
adds history to ``lru_gen_full``). ``enabled`` reads ``0x%04x`` and takes a hex mask or
``y``/``n``; components the kernel lacks are ignored. The debugfs files are root-only and
need debugfs mounted (``mount -t debugfs none /sys/kernel/debug``). Writes of aging
(``+ memcg_id node_id max_gen_nr ...``) or eviction commands fail with EINVAL for a stale
``max_gen_nr`` or a refused generation, so always check the errno.

Writes go through ``bench.kernel.sysfs`` (``Knobs`` restores ``enabled``); this module
only reads.
"""

from __future__ import annotations

import os

from bench.kernel import procfs

__all__ = [
    "LRU_GEN_DIR", "LRU_GEN_ENABLED", "LRU_GEN_MIN_TTL_MS", "DEBUGFS", "DEBUGFS_LRU_GEN",
    "DEBUGFS_LRU_GEN_FULL", "LRU_GEN_CORE", "LRU_GEN_MM_WALK", "LRU_GEN_NONLEAF_YOUNG",
    "enabled", "debugfs_mounted", "probe",
]

LRU_GEN_DIR = "/sys/kernel/mm/lru_gen"
LRU_GEN_ENABLED = LRU_GEN_DIR + "/enabled"
LRU_GEN_MIN_TTL_MS = LRU_GEN_DIR + "/min_ttl_ms"
DEBUGFS = "/sys/kernel/debug"
DEBUGFS_LRU_GEN = DEBUGFS + "/lru_gen"
DEBUGFS_LRU_GEN_FULL = DEBUGFS + "/lru_gen_full"

# Bits of `enabled` (enum { LRU_GEN_CORE, LRU_GEN_MM_WALK, LRU_GEN_NONLEAF_YOUNG } in mm/vmscan.c).
LRU_GEN_CORE = 1 << 0  # the main switch
LRU_GEN_MM_WALK = 1 << 1  # batched clearing of leaf-PTE Accessed bits by page-table walks
LRU_GEN_NONLEAF_YOUNG = 1 << 2  # also clear Accessed bits in non-leaf (PMD) entries


def enabled() -> int | None:
    """The ``enabled`` mask (``0x0007`` -> 7), or None when there is no MGLRU or it is unreadable."""
    text = procfs.read_text(LRU_GEN_ENABLED)
    if text is None:
        return None
    try:
        return int(text, 16)
    except ValueError:
        return None


def debugfs_mounted() -> bool:
    """True when a debugfs is mounted at /sys/kernel/debug."""
    for line in (procfs.read_text("/proc/self/mounts") or "").splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[1] == DEBUGFS and fields[2] == "debugfs":
            return True
    return False


def probe() -> str | None:
    """None when MGLRU can be driven here (possibly after turning ``enabled`` on), else the reason.

    A cleared main switch is not a reason: the tracker turns it on for its run through
    ``sysfs.Knobs`` and restores it, provided it is writable (root).
    """
    if not os.path.exists(LRU_GEN_ENABLED):
        return procfs.config_reason(f"no {LRU_GEN_DIR}", "CONFIG_LRU_GEN")
    mask = enabled()
    if mask is None:
        return f"{LRU_GEN_ENABLED} unreadable or not in 0x%04x form: {procfs.read_text(LRU_GEN_ENABLED)!r}"
    if os.geteuid() != 0:
        return "needs root (debugfs lru_gen aging and the lru_gen/enabled knob are root-only)"
    if not debugfs_mounted():
        if not os.path.isdir(DEBUGFS):
            return procfs.config_reason(f"no {DEBUGFS}", "CONFIG_DEBUG_FS")
        return f"debugfs is not mounted, so no {DEBUGFS_LRU_GEN}: mount -t debugfs none {DEBUGFS}"
    if not os.path.exists(DEBUGFS_LRU_GEN):
        return f"no {DEBUGFS_LRU_GEN} although {LRU_GEN_ENABLED} exists (debugfs restricted? check debugfs= on the kernel command line)"
    if not mask & LRU_GEN_CORE and not os.access(LRU_GEN_ENABLED, os.W_OK):
        return f"{LRU_GEN_ENABLED} is {mask:#06x} (off) and not writable: echo y > {LRU_GEN_ENABLED}"
    return None
