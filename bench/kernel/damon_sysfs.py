"""DAMON sysfs interface: /sys/kernel/mm/damon/admin (Documentation/admin-guide/mm/damon/usage.rst,
Documentation/mm/damon/design.rst).

``CONFIG_DAMON`` + ``CONFIG_DAMON_SYSFS``; operations sets ``CONFIG_DAMON_VADDR`` (``vaddr``,
``fvaddr``) and ``CONFIG_DAMON_PADDR`` (``paddr``). Root only. Tree:
``admin/kdamonds/nr_kdamonds``, ``kdamonds/<K>/{state,pid}``,
``kdamonds/<K>/contexts/<C>/{avail_operations,operations}``, ...

The only way to learn ``avail_operations`` is to read it inside an existing context
directory; creating one means writing ``nr_kdamonds``, which tears down every kdamond
directory (or fails with EBUSY while one runs). So this module only *reads*: a kdamond it
finds belongs to someone else (hotbench has created none), and hotbench never stops,
changes or reuses it. Writes, once a tracker owns a kdamond, go through
``bench.kernel.sysfs``; they fail with EBUSY (state change while busy), EINVAL (a
command the kernel lacks) or EACCES (not root).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import NamedTuple

from bench.kernel import procfs

__all__ = [
    "DAMON_SYSFS", "DAMON_ADMIN", "KDAMONDS", "NR_KDAMONDS", "OPERATIONS_CONFIG",
    "Kdamond", "kdamonds_in_use", "avail_operations", "busy_reason", "probe",
]

DAMON_SYSFS = "/sys/kernel/mm/damon"
DAMON_ADMIN = DAMON_SYSFS + "/admin"
KDAMONDS = DAMON_ADMIN + "/kdamonds"
NR_KDAMONDS = KDAMONDS + "/nr_kdamonds"

# Operations set -> the config option that builds it.
OPERATIONS_CONFIG = {"vaddr": "CONFIG_DAMON_VADDR", "fvaddr": "CONFIG_DAMON_VADDR", "paddr": "CONFIG_DAMON_PADDR"}


class Kdamond(NamedTuple):
    """One ``kdamonds/<index>`` directory as read, never written."""

    index: int
    state: str | None  # "on" / "off"
    pid: int | None  # kdamond thread while on
    operations: tuple[str, ...]  # selected operations set of each context
    avail_operations: tuple[str, ...] | None  # union over its contexts; None without a context

    def describe(self) -> str:
        """'kdamond 0 (paddr) is running, pid 77' / 'kdamond 1 (no context) exists, off'."""
        ops = "/".join(self.operations) or "no context"
        if self.state == "on":
            return f"kdamond {self.index} ({ops}) is running" + (f", pid {self.pid}" if self.pid else "")
        return f"kdamond {self.index} ({ops}) exists, {self.state or 'state unreadable'}"


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def kdamonds_in_use() -> list[Kdamond]:
    """Every kdamond directory that exists, running or not, with its state and operations."""
    try:
        names = os.listdir(KDAMONDS)
    except OSError:
        return []
    found = []
    for name in sorted((n for n in names if n.isdigit()), key=int):
        base = f"{KDAMONDS}/{name}"
        operations, avail = [], None
        try:
            contexts = sorted((c for c in os.listdir(f"{base}/contexts") if c.isdigit()), key=int)
        except OSError:
            contexts = []
        for ctx in contexts:
            op = procfs.read_text(f"{base}/contexts/{ctx}/operations")
            if op:
                operations.append(op)
            ops = procfs.read_text(f"{base}/contexts/{ctx}/avail_operations")
            if ops is not None:
                avail = sorted(set(avail or ()) | set(ops.split()))
        pid = _int(procfs.read_text(f"{base}/pid"))
        found.append(Kdamond(int(name), procfs.read_text(f"{base}/state"), pid if pid and pid > 0 else None,
                             tuple(operations), tuple(avail) if avail is not None else None))
    return found


def avail_operations(kdamonds: list[Kdamond] | None = None) -> set[str] | None:
    """Operations sets the kernel offers (from any context's ``avail_operations``); None if no context exists."""
    kdamonds = kdamonds_in_use() if kdamonds is None else kdamonds
    known = [set(k.avail_operations) for k in kdamonds if k.avail_operations is not None]
    return set().union(*known) if known else None


def busy_reason(kdamonds: list[Kdamond] | None = None, ours: Collection[int] = ()) -> str | None:
    """Why DAMON is not ours to use: a kdamond that is on, or that hotbench did not create."""
    kdamonds = kdamonds_in_use() if kdamonds is None else kdamonds
    others = [k for k in kdamonds if k.index not in ours or k.state == "on"]
    if not others:
        return None
    what = "; ".join(k.describe() + (" (ours)" if k.index in ours else " (not ours)") for k in others)
    return f"in use: {what}; hotbench never stops or reuses another kdamond — test DAMON inside 'hotbench vm'"


def _operations_reason(operations: str, kdamonds: list[Kdamond]) -> str | None:
    option = OPERATIONS_CONFIG.get(operations, "CONFIG_DAMON")
    avail = avail_operations(kdamonds)
    if avail is not None:
        if operations in avail:
            return None
        listed = " ".join(sorted(avail)) or "nothing"
        return procfs.config_reason(f"'{operations}' not in avail_operations (lists {listed})", option)
    # No context directory to read avail_operations from, and making one means writing.
    value = procfs.config_value(option)
    if value in ("y", "m"):
        return None
    if value == "n":
        return f"no context to read avail_operations from, and {option} is not set"
    return (f"unknown whether '{operations}' is built in: no DAMON context to read avail_operations from "
            f"without writing, and the kernel config is not readable")


def probe(operations: str, ours: Collection[int] = ()) -> str | None:
    """None when a kdamond with *operations* (``vaddr``/``paddr``) could be started by hotbench, else why not."""
    if not os.path.isdir(DAMON_ADMIN):
        if not os.path.isdir(DAMON_SYSFS):
            return procfs.config_reason(f"no {DAMON_SYSFS}", "CONFIG_DAMON_SYSFS")
        return procfs.config_reason(f"no {DAMON_ADMIN}", "CONFIG_DAMON_SYSFS")
    if os.geteuid() != 0:
        return "needs root (DAMON sysfs is root-only)"
    kdamonds = kdamonds_in_use()
    missing = _operations_reason(operations, kdamonds)
    busy = busy_reason(kdamonds, ours)
    if missing and busy:
        return f"{missing}; DAMON is also {busy.partition('; hotbench')[0]}"
    return missing or busy
