"""The one low-level door to kernel files (procfs, sysfs, debugfs): read a file's text, write a
value in one ``write(2)``, and the named paths of the files read outside a mechanism's own module.

``bench.kernel.procfs`` and ``bench.kernel.sysfs`` build on this module and on nothing of each
other. Modelled on damo's ``_damo_fs.py``: ``read_text`` returns content or None, ``write``
raises ``OSError(errno, "<strerror> (writing <value>)", <path>)``, so every failure names both
path and value. ``HOTBENCH_SYSFS_LOG=1`` in the environment echoes every write to stderr.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["LOG_ENV", "read_text", "write", "bracketed_choice", "logging_writes", "proc_path",
           "MAX_MAP_COUNT", "UNPRIVILEGED_USERFAULTFD", "NUMA_BALANCING", "FILESYSTEMS", "CPUINFO", "LOADAVG",
           "THP_ENABLED", "THP_DEFRAG", "CPU0_CACHE", "CPU0_GOVERNOR", "NODE_ONLINE"]

LOG_ENV = "HOTBENCH_SYSFS_LOG"

# Kernel files read or written outside a mechanism's own module (procfs and sysfs hand them on).
MAX_MAP_COUNT = "/proc/sys/vm/max_map_count"
UNPRIVILEGED_USERFAULTFD = "/proc/sys/vm/unprivileged_userfaultfd"
NUMA_BALANCING = "/proc/sys/kernel/numa_balancing"
FILESYSTEMS = "/proc/filesystems"
CPUINFO = "/proc/cpuinfo"
LOADAVG = "/proc/loadavg"
THP_ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled"
THP_DEFRAG = "/sys/kernel/mm/transparent_hugepage/defrag"
CPU0_CACHE = "/sys/devices/system/cpu/cpu0/cache"
CPU0_GOVERNOR = "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"
NODE_ONLINE = "/sys/devices/system/node/online"


def proc_path(name: str, pid: int | str = "self") -> str:
    """``/proc/<pid>/<name>``: maps, mounts, cgroup, stat, smaps, pagemap, clear_refs ..."""
    return f"/proc/{pid}/{name}"


def logging_writes() -> bool:
    return os.environ.get(LOG_ENV, "") not in ("", "0")


def read_text(path: str | Path) -> str | None:
    """File content stripped, or None when it does not exist or cannot be read."""
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def write(path: str | Path, value: str | int | bytes) -> None:
    """Write *value* to the existing file *path* in a single ``write(2)``.

    Never creates files (a mistyped knob must fail, not appear). Raises OSError whose
    message names the value and whose ``filename`` is *path*.
    """
    path = str(path)
    data = value if isinstance(value, bytes) else str(value).encode()
    if logging_writes():
        print(f"hotbench sysfs: {path} <- {data.decode(errors='replace')!r}", file=sys.stderr, flush=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            n = os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as e:
        raise OSError(e.errno, f"{e.strerror} (writing {data.decode(errors='replace')!r})", path) from None
    if n != len(data):
        raise OSError(0, f"short write {n}/{len(data)} bytes (writing {data.decode(errors='replace')!r})", path)


def bracketed_choice(text: str | None) -> str | None:
    """'always [madvise] never' -> 'madvise' (the format of THP and similar enum knobs)."""
    if not text:
        return None
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return text
