"""Multi-Gen LRU: /sys/kernel/mm/lru_gen and debugfs lru_gen
(Documentation/admin-guide/mm/multigen_lru.rst, Documentation/mm/multigen_lru.rst).

``CONFIG_LRU_GEN`` (``CONFIG_LRU_GEN_ENABLED`` sets the boot default, ``CONFIG_LRU_GEN_STATS``
adds history to ``lru_gen_full``). ``enabled`` reads ``0x%04x`` and takes a hex mask or
``y``/``n``; components the kernel lacks are ignored. The debugfs files are root-only and
need debugfs mounted (``mount -t debugfs none /sys/kernel/debug``). Writes of aging
(``+ memcg_id node_id max_gen_nr ...``) or eviction commands fail with EINVAL for a stale
``max_gen_nr`` or a refused generation, so always check the errno.

Writes go through ``bench.kernel.sysfs`` (``Knobs`` restores ``enabled``). ``parse_lru_gen``
reads the debugfs histogram (one ``LruGenMemcg`` per memcg, per node its generations as
``Generation(seq, age_ms, anon, file)``); ``age`` writes one aging command for one memcg and
node and raises the kernel's OSError: EINVAL for a ``max_gen_nr`` above the current one (or
a bad memcg/node), EEXIST when the kernel declined to create the generation (another aging
walk in progress; newer kernels), ERANGE (6.1-era ``run_aging``) when all
``MAX_NR_GENS`` generations exist and ``force_scan`` is 0. A stale (smaller) ``max_gen_nr`` is
silently ignored by older kernels and aged from the current one by newer ones, so callers
re-read the file to learn whether a generation was created.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from bench.kernel import procfs

__all__ = [
    "LRU_GEN_DIR", "LRU_GEN_ENABLED", "LRU_GEN_MIN_TTL_MS", "DEBUGFS", "DEBUGFS_LRU_GEN",
    "DEBUGFS_LRU_GEN_FULL", "LRU_GEN_CORE", "LRU_GEN_MM_WALK", "LRU_GEN_NONLEAF_YOUNG",
    "enabled", "debugfs_mounted", "probe",
    "MAX_NR_GENS", "MIN_NR_GENS", "Generation", "LruGenMemcg", "parse_lru_gen", "read_lru_gen",
    "aging_command", "age",
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


# ---------------------------------------------------------------- debugfs lru_gen

MAX_NR_GENS = 4  # include/linux/mmzone.h: generations per lruvec
MIN_NR_GENS = 2


class Generation(NamedTuple):
    """One line of a node in ``lru_gen``: ``seq age_ms nr_anon_pages nr_file_pages``."""

    seq: int
    age_ms: int
    anon: int
    file: int


class LruGenMemcg(NamedTuple):
    """One ``memcg ID PATH`` block: per node id, its generations oldest first."""

    id: int
    path: str
    nodes: dict[int, list[Generation]]

    def max_seq(self, node: int) -> int:
        return max(g.seq for g in self.nodes[node])


def _count(token: str) -> int:
    """'123', '123x' (lru_gen_full's mark), '-0' (older kernels, seq below that type's min_seq)."""
    return max(int(token.rstrip("x")), 0)


def parse_lru_gen(text: str) -> list[LruGenMemcg]:
    """The memcgs of an ``lru_gen`` read (mm/vmscan.c ``lru_gen_seq_show``), in file order.

    The memcg line is ``memcg %5hu %s`` (``%llu`` on newer kernels), the path relative to
    the cgroup hierarchy's root ("/" for the root memcg, "" with memcg disabled); node lines
    ``node %5d``; generation lines ``seq age_ms anon file``. Lines of ``lru_gen_full``'s
    extra statistics (fewer or non-numeric fields) are skipped. Raises ValueError on a
    generation line before any memcg/node line.
    """
    found: list[LruGenMemcg] = []
    node: list[Generation] | None = None
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "memcg":
            head = line.split(None, 2)
            found.append(LruGenMemcg(int(head[1]), head[2].strip() if len(head) > 2 else "", {}))
            node = None
        elif fields[0] == "node":
            if not found:
                raise ValueError(f"lru_gen: node line before any memcg line: {line!r}")
            node = found[-1].nodes.setdefault(int(fields[1]), [])
        elif len(fields) >= 4 and fields[0].isdigit() and fields[1].isdigit():
            if node is None:
                raise ValueError(f"lru_gen: generation line outside a node: {line!r}")
            try:
                node.append(Generation(int(fields[0]), int(fields[1]), _count(fields[2]), _count(fields[3])))
            except ValueError:
                continue  # an lru_gen_full statistics line
    return found


def read_lru_gen(path: str | None = None) -> list[LruGenMemcg]:
    """Parse the debugfs file now (root). OSError when it cannot be read."""
    path = path or DEBUGFS_LRU_GEN
    with open(path) as f:
        return parse_lru_gen(f.read())


def aging_command(memcg_id: int, node: int, max_gen_nr: int, can_swap: int = 1, force_scan: int = 1) -> str:
    """``+ memcg_id node_id max_gen_nr can_swap force_scan`` (newer kernels read the fifth
    field as swappiness: 1 still ages anon; force_scan=1 walks every page table, no Bloom-filter skipping)."""
    return f"+ {memcg_id} {node} {max_gen_nr} {can_swap} {force_scan}"


def age(memcg_id: int, node: int, max_gen_nr: int, can_swap: int = 1, force_scan: int = 1,
        path: str | None = None) -> None:
    """Create generation ``max_gen_nr + 1`` for one memcg and node (one write); OSError on refusal."""
    from bench.kernel import sysfs

    sysfs.write(path or DEBUGFS_LRU_GEN, aging_command(memcg_id, node, max_gen_nr, can_swap, force_scan))
