"""Small readers of /proc and /sys files the suite needs in many places.

All reads go through ``read_text``; writes that change kernel state go through
``bench.kernel.sysfs`` so they can be logged and restored.
"""

from __future__ import annotations

import ctypes
import functools
import gzip
import os
import resource
from pathlib import Path

from bench.kernel._files import (CPUINFO, FILESYSTEMS, LOADAVG, MAX_MAP_COUNT, NUMA_BALANCING, THP_ENABLED,
                                 UNPRIVILEGED_USERFAULTFD, bracketed_choice, proc_path, read_text, write)

__all__ = [
    "read_text", "meminfo", "thp_mode", "bracketed_choice", "minor_faults", "kernel_config",
    "kernel_config_text", "config_value", "config_reason", "clear_refs", "smaps_field",
    "soft_dirty_unavailable", "smaps_vma", "smaps_path", "smaps_bytes", "process_start_time", "boot_id", "BOOT_ID",
    "CLEAR_REFS_ALL", "CLEAR_REFS_ANON", "CLEAR_REFS_MAPPED",
    "CLEAR_REFS_SOFT_DIRTY", "CLEAR_REFS_MM_HIWATER_RSS", "proc_path", "MAX_MAP_COUNT", "UNPRIVILEGED_USERFAULTFD",
    "NUMA_BALANCING", "FILESYSTEMS", "CPUINFO", "LOADAVG",
]

# Values written to /proc/<pid>/clear_refs (Documentation/filesystems/proc.rst; the names of
# enum clear_refs_types in fs/proc/task_mmu.c).
CLEAR_REFS_ALL = 1  # clear PTE Accessed bits and PG_referenced of every mapped page
CLEAR_REFS_ANON = 2  # same, anonymous pages only
CLEAR_REFS_MAPPED = 3  # same, file-mapped pages only
CLEAR_REFS_SOFT_DIRTY = 4  # clear soft-dirty bits (accepted even without CONFIG_MEM_SOFT_DIRTY)
CLEAR_REFS_MM_HIWATER_RSS = 5  # reset VmHWM to the current RSS


BOOT_ID = "/proc/sys/kernel/random/boot_id"  # a random UUID per boot (Documentation/admin-guide/sysctl/kernel.rst)


def process_start_time(pid: int | str) -> int | None:
    """Field 22 of /proc/<pid>/stat, ``starttime``: when the process started, in clock ticks after
    boot (proc(5)). With the pid it names one process for the life of the boot, as a pid alone
    does not (pids are reused). None when there is no such process."""
    stat = read_text(f"/proc/{pid}/stat")
    if not stat:
        return None
    # comm (field 2) may hold spaces and parentheses: the fields after it follow the last ')'
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])  # fields[0] is field 3 (state)
    except (IndexError, ValueError):
        return None


def boot_id() -> str | None:
    """This boot's random id: a process identity recorded before a reboot names no live process."""
    return read_text(BOOT_ID)


def meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes (HugePages_* counts stay counts)."""
    out = {}
    for line in (read_text("/proc/meminfo") or "").splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if not fields:
            continue
        value = int(fields[0])
        out[key] = value * 1024 if len(fields) > 1 and fields[1] == "kB" else value
    return out


def vmstat() -> dict[str, int]:
    """/proc/vmstat as {counter: value} (empty when unreadable)."""
    out = {}
    for line in (read_text("/proc/vmstat") or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def thp_mode() -> str | None:
    return bracketed_choice(read_text(THP_ENABLED))


def minor_faults() -> int:
    """Minor faults of the whole process so far (all threads)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def task_cpu_ns(pid: int | None) -> int | None:
    """CPU time a task (e.g. a kdamond) has run, in ns: ``/proc/PID/schedstat``'s first field
    (sum_exec_runtime, ns-exact; CONFIG_SCHED_INFO), else utime + stime from ``/proc/PID/stat``
    (clock ticks). None for no pid or a task that is gone. Under ``hotbench vm --icount`` these
    ns are guest instructions (bench/clock.py)."""
    if not pid:
        return None
    text = read_text(f"/proc/{pid}/schedstat")
    if text:
        return int(text.split()[0])
    stat = read_text(f"/proc/{pid}/stat")
    if not stat:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


@functools.lru_cache(maxsize=1)
def kernel_config_text() -> tuple[str, str] | None:
    """(text, source) of the running kernel's config: /proc/config.gz, else /boot/config-RELEASE."""
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            return f.read(), "/proc/config.gz"
    except OSError:
        pass
    path = f"/boot/config-{os.uname().release}"
    try:
        return Path(path).read_text(), path
    except OSError:
        return None


def kernel_config() -> dict[str, str] | None:
    """The running kernel's config (/proc/config.gz or /boot/config-RELEASE), or None if unreadable."""
    found = kernel_config_text()
    if found is None:
        return None
    config = {}
    for line in found[0].splitlines():
        if line.startswith("CONFIG_"):
            key, _, value = line.partition("=")
            config[key] = value
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            config[line[2:].split()[0]] = "n"
    return config


def config_value(option: str) -> str | None:
    """'y', 'm', a value, 'n' (not set or absent from the config), or None when the config is unreadable."""
    config = kernel_config()
    if config is None:
        return None
    return config.get(option, "n")


def config_reason(missing: str, option: str) -> str:
    """Enrich a feature-detected *missing* thing with what the kernel config says about *option*.

    The config never decides (distros backport; options get renamed): it only explains.
    'no /sys/kernel/mm/page_idle: CONFIG_IDLE_PAGE_TRACKING is not set', or
    '... (kernel config not readable)'.
    """
    value = config_value(option)
    if value is None:
        return f"{missing} (kernel config not readable)"
    if value == "n":
        return f"{missing}: {option} is not set"
    return f"{missing} although {option}={value}"


def clear_refs(value: int, pid: int | str = "self") -> None:
    """Write *value* (a ``CLEAR_REFS_*``) to /proc/<pid>/clear_refs through the one door (``_files.write``).

    Owner-writable, no capability needed for one's own process. Affects the whole
    process (every VMA); value 4 write-protects every PTE so the next write faults.
    """
    write(proc_path("clear_refs", pid), str(value))


def smaps_path(pid: int | str = "self") -> str:
    return proc_path("smaps", pid)


def smaps_bytes(pid: int | str = "self") -> bytes:
    """All of /proc/<pid>/smaps, read in 1 MiB chunks: the kernel renders it (walking every VMA's
    page tables) as it is read, so this is the whole cost of a smaps reader. OSError if unreadable."""
    fd = os.open(smaps_path(pid), os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def smaps_field(addr: int, field: str = "Referenced", pid: int | str = "self") -> int | None:
    """*field* (a kB line of /proc/<pid>/smaps, e.g. ``Referenced``) of the VMA holding *addr*, in bytes.

    None when no VMA contains *addr* or the VMA has no such line.
    """
    text = read_text(smaps_path(pid))
    if text is None:
        return None
    inside = False
    prefix = field + ":"
    for line in text.splitlines():
        head = line.split(" ", 1)[0]
        if "-" in head and not head.endswith(":"):
            lo, _, hi = head.partition("-")
            try:
                inside = int(lo, 16) <= addr < int(hi, 16)
            except ValueError:
                inside = False
        elif inside and line.startswith(prefix):
            fields = line[len(prefix):].split()
            return int(fields[0]) * (1024 if fields[1:] == ["kB"] else 1)
    return None


def smaps_vma(addr: int, pid: int | str = "self") -> dict[str, int | list[str] | tuple[int, int]] | None:
    """The smaps entry of the VMA holding *addr*: kB lines in bytes, ``VmFlags`` as a list of
    mnemonics, ``range`` as (start, end); None when no VMA contains *addr*.

    Streams the file and stops after that entry: the kernel renders smaps (walking each VMA's
    page tables) as it is read, so the VMAs after the one wanted cost nothing.
    """
    found: dict | None = None
    try:
        f = open(smaps_path(pid))
    except OSError:
        return None
    with f:
        for line in f:
            head = line.split(" ", 1)[0]
            if "-" in head and not head.endswith(":"):
                if found is not None:
                    break
                lo, _, hi = head.partition("-")
                try:
                    start, end = int(lo, 16), int(hi, 16)
                except ValueError:
                    continue
                if start <= addr < end:
                    found = {"range": (start, end)}
            elif found is not None:
                key, _, rest = line.partition(":")
                fields = rest.split()
                if key == "VmFlags":
                    found[key] = fields
                    break  # the last line of an entry
                if fields and fields[0].isdigit():
                    found[key] = int(fields[0]) * (1024 if fields[1:] == ["kB"] else 1)
    return found


def soft_dirty_unavailable() -> str | None:
    """Functional soft-dirty probe (Documentation/admin-guide/mm/soft-dirty.rst); None when it works.

    Maps one private page, writes ``CLEAR_REFS_SOFT_DIRTY`` to the own clear_refs, dirties
    the page and reads pagemap bit 55. Kernels without ``CONFIG_MEM_SOFT_DIRTY`` accept the
    write of 4 anyway, so the write's success proves nothing. Side effects stay inside this
    process: every soft-dirty bit of it is cleared (do not run this while a soft-dirty
    tracker is active in the same process) and the mapping is unmapped.
    """
    from bench.kernel import libc, pagemap

    size = pagemap.PAGE_SIZE
    addr = libc.mmap(size, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS)
    try:
        ctypes.memset(addr, 1, 1)  # present before the clear
        clear_refs(CLEAR_REFS_SOFT_DIRTY)
        before = int(pagemap.read_entries(addr, 1)[0])
        ctypes.memset(addr, 2, 1)
        after = int(pagemap.read_entries(addr, 1)[0])
    finally:
        libc.munmap(addr, size)
    if after & pagemap.PM_SOFT_DIRTY and not before & pagemap.PM_SOFT_DIRTY:
        return None
    if before & pagemap.PM_SOFT_DIRTY:
        return "clear_refs 4 did not clear the soft-dirty bit (pagemap bit 55)"
    return config_reason("clear_refs accepted 4, but a written page never showed soft-dirty (pagemap bit 55)",
                         "CONFIG_MEM_SOFT_DIRTY")
