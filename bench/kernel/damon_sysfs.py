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

``OwnedKdamond`` is the only writer: it creates a kdamond only when ``nr_kdamonds`` is 0,
no kdamond directory exists (then every kdamond is hotbench's: index 0) and no in-kernel
DAMON module holds DAMON exclusively; it configures its one context, starts it, takes
``tried_regions`` snapshots, and ``remove()`` turns it off and writes ``nr_kdamonds`` back to
0. Every path is bound at ``create`` (``KDAMONDS`` as it was then: tests point the module at
a fake tree, and an object made there can never write anywhere else), and ``remove``
proves ownership before writing: the running kdamond's pid must be the one it started,
its context must still hold the operations and pid it configured, and ``nr_kdamonds`` must
still be the count it set — otherwise it refuses (OSError EPERM/EBUSY) and writes nothing.
Ownership outlives the process: ``create`` writes a state journal entry (``bench.journal``)
before it touches ``nr_kdamonds``, and adds the operations, target and kthread pid as they
become known; ``remove`` deletes it. After a crash the next hotbench command rebuilds the
object from the entry (``adopt``) and ``remove_orphan`` takes the kdamond away by the same
proof — or, when the kdamond there is not provably the one that process created (a
machine's own kdamond, say), leaves it exactly as it is and says so.
Each write is retried briefly on EBUSY (the sysfs handlers take ``damon_sysfs_lock`` with
a trylock).
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Collection, Sequence
from typing import NamedTuple

import numpy as np

from bench.kernel import procfs

__all__ = [
    "DAMON_SYSFS", "DAMON_ADMIN", "KDAMONDS", "NR_KDAMONDS", "OPERATIONS_CONFIG",
    "Kdamond", "kdamonds_in_use", "avail_operations", "busy_reason", "probe",
    "ULONG_MAX", "UINT_MAX", "tried_region_dtype", "OwnedKdamond", "EXCLUSIVE_MODULES", "exclusive_users",
    "exclusive_reason",
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


# In-kernel DAMON users that start their kdamond with damon_start(..., exclusive=true): while
# one runs, every other damon_start() — a sysfs kdamond's 'on' included — fails with EBUSY
# (mm/damon/core.c). Module parameter -> what to call it. DAMON_STAT (6.17+) is on by default
# in some distribution kernels (Debian 7.3: CONFIG_DAMON_STAT_ENABLED_DEFAULT=y).
EXCLUSIVE_MODULES = {
    "/sys/module/damon_stat/parameters/enabled": "DAMON_STAT",
    "/sys/module/damon_reclaim/parameters/enabled": "DAMON_RECLAIM",
    "/sys/module/damon_lru_sort/parameters/enabled": "DAMON_LRU_SORT",
}


def exclusive_users() -> list[str]:
    """In-kernel DAMON modules running now (each holds DAMON exclusively), e.g. ['DAMON_STAT']."""
    return [name for path, name in EXCLUSIVE_MODULES.items() if procfs.read_text(path) in ("Y", "y", "1")]


def exclusive_reason(users: list[str] | None = None) -> str | None:
    """Why no sysfs kdamond can start while in-kernel DAMON modules run, or None."""
    users = exclusive_users() if users is None else users
    if not users:
        return None
    params = ", ".join(f"{u.lower()}.enabled=Y" for u in users)
    return (f"busy: {' and '.join(users)} holds DAMON exclusively ({params}), so a sysfs kdamond cannot start "
            f"(damon_start: EBUSY); hotbench never stops it — boot the test kernel with {users[0].lower()}.enabled=N")


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
    busy = busy_reason(kdamonds, ours) or exclusive_reason()
    if missing and busy:
        return f"{missing}; DAMON is also {busy.partition('; hotbench')[0]}"
    return missing or busy


# ---------------------------------------------------------------- a kdamond hotbench owns

ULONG_MAX = (1 << 64) - 1
UINT_MAX = (1 << 32) - 1  # access_pattern nr_accesses/age reach the kernel as unsigned int
tried_region_dtype = np.dtype([("start", "<u8"), ("end", "<u8"), ("nr_accesses", "<i8"), ("age", "<i8")])

_BUSY_RETRIES = 100  # x 10 ms


class OwnedKdamond:
    """The kdamond hotbench created (index 0 of an otherwise empty ``kdamonds/``).

    Order of writes (``create``, ``add_context``, ``configure``, ``add_stat_scheme``,
    ``command("on")``) follows Documentation/admin-guide/mm/damon/usage.rst; the unit test
    checks it on a fake tree.
    """

    def __init__(self, root: str, index: int, journal=None, entry=None):
        self.root = root  # the kdamonds/ directory this object was created in, for its whole life
        self.index = index
        self.removed = False
        self.kdamond_pid: int | None = None  # the kthread our 'on' started
        self.configured: tuple[str, str | None] | None = None  # (operations, pid_target) we wrote
        self._journal, self._entry = journal, entry  # this kdamond's state journal entry (None: adopted)
        self.nr_before = str(index)

    def _note(self, **fields) -> None:
        if self._entry is not None:
            self._journal.update(self._entry, **fields)

    @property
    def base(self) -> str:
        return f"{self.root}/{self.index}"

    @property
    def ctx(self) -> str:
        return f"{self.base}/contexts/0"

    @property
    def scheme(self) -> str:
        return f"{self.ctx}/schemes/0"

    @staticmethod
    def _write(path: str, value) -> None:
        from bench.kernel import sysfs

        for attempt in range(_BUSY_RETRIES):
            try:
                sysfs.write(path, value)
                return
            except OSError as e:
                if e.errno != errno.EBUSY or attempt == _BUSY_RETRIES - 1:
                    raise
                time.sleep(0.01)

    @classmethod
    def create(cls, journal=None) -> OwnedKdamond:
        """Write ``nr_kdamonds`` 1 — only when there is no kdamond at all; else OSError(EBUSY, reason).
        The state journal (*journal*, by default ``bench.journal.default()``) has it first."""
        from bench import journal as journal_mod

        root = KDAMONDS
        nr_path = f"{root}/nr_kdamonds"
        current = procfs.read_text(nr_path)
        if current is None:
            raise OSError(errno.ENOENT, "DAMON sysfs not present or not readable (needs root)", nr_path)
        existing = kdamonds_in_use()
        if current != "0" or existing:
            reason = busy_reason(existing) or f"nr_kdamonds is {current}"
            raise OSError(errno.EBUSY, reason, nr_path)
        exclusive = exclusive_reason()
        if exclusive:
            raise OSError(errno.EBUSY, exclusive, nr_path)
        journal = journal or journal_mod.default()
        entry = journal.record(journal_mod.KDAMOND, kdamonds=root, index=0, nr_before=current, nr_set="1")
        try:
            cls._write(nr_path, "1")
        except BaseException:
            journal.remove(entry)
            raise
        return cls(root, 0, journal, entry)

    @classmethod
    def adopt(cls, fields: dict) -> OwnedKdamond:
        """The kdamond a state journal entry describes, as its creator knew it (for ``remove_orphan``)."""
        kdamond = cls(str(fields["kdamonds"]), int(fields["index"]))
        kdamond.nr_before = str(fields.get("nr_before", fields["index"]))
        kdamond.kdamond_pid = fields.get("kdamond_pid")
        if fields.get("operations"):
            kdamond.configured = (fields["operations"], fields.get("target_pid"))
        return kdamond

    def remove_orphan(self) -> str:
        """Remove a kdamond left by a dead hotbench if it is provably that one; else leave it exactly
        as it is. Returns what was done, in one line."""
        nr_path = f"{self.root}/nr_kdamonds"
        current = procfs.read_text(nr_path)
        label = f"kdamond {self.index} under {self.root}"
        if current is None or not os.path.isdir(self.base):
            return f"{label} is gone; nothing to remove"
        if current != str(self.index + 1):
            return f"left {label} alone: nr_kdamonds is {current}, not the {self.index + 1} hotbench set"
        problem = self._ownership_problem()
        if problem:
            return f"left {label} alone: {problem}, so it is not the one hotbench created"
        state, ops = self.state(), (self.configured or ("not configured",))[0]
        self.remove()
        return (f"removed {label} ({ops}): {state} -> removed, nr_kdamonds {current} -> "
                f"{procfs.read_text(nr_path)}")

    def avail_operations(self) -> set[str]:
        return set((procfs.read_text(f"{self.ctx}/avail_operations") or "").split())

    def add_context(self) -> None:
        self._write(f"{self.base}/contexts/nr_contexts", "1")

    def configure(self, operations: str, *, sample_us: int, aggr_us: int, update_us: int,
                  min_nr_regions: int, max_nr_regions: int, pid: int | None,
                  regions: Sequence[tuple[int, int]] = ()) -> None:
        """Operations set, intervals, region bounds, one target (pid for vaddr/fvaddr) with *regions*."""
        ctx = self.ctx
        self.configured = (operations, str(pid) if pid is not None else None)
        self._note(operations=operations, target_pid=self.configured[1])
        self._write(f"{ctx}/operations", operations)
        intervals = f"{ctx}/monitoring_attrs/intervals"
        self._write(f"{intervals}/sample_us", str(sample_us))
        self._write(f"{intervals}/aggr_us", str(aggr_us))
        self._write(f"{intervals}/update_us", str(update_us))
        self._write(f"{ctx}/monitoring_attrs/nr_regions/min", str(min_nr_regions))
        self._write(f"{ctx}/monitoring_attrs/nr_regions/max", str(max_nr_regions))
        self._write(f"{ctx}/targets/nr_targets", "1")
        if pid is not None:
            self._write(f"{ctx}/targets/0/pid_target", str(pid))
        self.set_regions(regions)

    def set_regions(self, regions: Sequence[tuple[int, int]]) -> None:
        """The target's regions (sorted, non-overlapping ``[start, end)`` byte addresses)."""
        base = f"{self.ctx}/targets/0/regions"
        self._write(f"{base}/nr_regions", str(len(regions)))
        for i, (start, end) in enumerate(regions):
            self._write(f"{base}/{i}/start", str(int(start)))
            self._write(f"{base}/{i}/end", str(int(end)))

    def add_stat_scheme(self) -> None:
        """One ``stat`` scheme whose access pattern takes every region (a snapshot source)."""
        self._write(f"{self.ctx}/schemes/nr_schemes", "1")
        s = self.scheme
        self._write(f"{s}/action", "stat")
        pattern = f"{s}/access_pattern"
        for knob, high in (("sz", ULONG_MAX), ("nr_accesses", UINT_MAX), ("age", UINT_MAX)):
            self._write(f"{pattern}/{knob}/min", "0")
            self._write(f"{pattern}/{knob}/max", str(high))

    def state(self) -> str | None:
        return procfs.read_text(f"{self.base}/state")

    def command(self, cmd: str) -> None:
        """Write *cmd* (``on``, ``off``, ``commit``, ``update_schemes_tried_regions``...) to ``state``.

        ``update_schemes_tried_regions``/``_bytes`` return once the scheme was applied after
        the request, i.e. at the end of the aggregation interval then in progress."""
        self._write(f"{self.base}/state", cmd)
        if cmd == "on":
            self.kdamond_pid = self.pid()
            self._note(kdamond_pid=self.kdamond_pid)

    def pid(self) -> int | None:
        return _int(procfs.read_text(f"{self.base}/pid"))

    def tried_regions(self) -> np.ndarray:
        """The scheme's ``tried_regions/<N>/{start,end,nr_accesses,age}``, sorted by start."""
        base = f"{self.scheme}/tried_regions"
        try:
            names = sorted((n for n in os.listdir(base) if n.isdigit()), key=int)
        except OSError:
            names = []
        fields = ("start", "end", "nr_accesses", "age")
        values = np.zeros((len(names), len(fields)), dtype=np.uint64)
        for i, name in enumerate(names):  # 4 small sysfs files per region: bare os calls, no pathlib
            d = f"{base}/{name}"
            for j, f in enumerate(fields):
                try:
                    fd = os.open(f"{d}/{f}", os.O_RDONLY | os.O_CLOEXEC)
                    try:
                        values[i, j] = int(os.read(fd, 64))
                    finally:
                        os.close(fd)
                except (OSError, ValueError) as e:
                    raise OSError(errno.EIO, f"tried region unreadable ({e}); did the kdamond update it?", d) from None
        out = np.zeros(len(names), dtype=tried_region_dtype)
        for j, f in enumerate(fields):
            out[f] = values[:, j]
        return np.sort(out, order="start")

    def _ownership_problem(self) -> str | None:
        """Why the kdamond at our index might not be ours any more (None: it is ours)."""
        state = self.state()
        if state == "on" and (self.kdamond_pid is None or self.pid() != self.kdamond_pid):
            return f"kdamond {self.index} runs as pid {self.pid()}, not the {self.kdamond_pid} hotbench started"
        if self.configured is not None:
            operations, pid = self.configured
            if procfs.read_text(f"{self.ctx}/operations") != operations:
                return f"kdamond {self.index}'s operations are not the {operations!r} hotbench set"
            if pid is not None and procfs.read_text(f"{self.ctx}/targets/0/pid_target") != pid:
                return f"kdamond {self.index}'s target is not pid {pid}"
        return None

    def remove(self) -> None:
        """Turn it off, then ``nr_kdamonds`` back to 0. Idempotent. Writes nothing unless the
        kdamond is provably ours (see the module doc); refuses with OSError otherwise."""
        if self.removed:
            return
        nr_path = f"{self.root}/nr_kdamonds"
        current = procfs.read_text(nr_path)
        if current is None or current == "0" or not os.path.isdir(self.base):
            self._forget()  # gone already (or the tree is)
            return
        if current != str(self.index + 1):
            raise OSError(errno.EBUSY, f"nr_kdamonds is {current}, not the {self.index + 1} hotbench set: "
                                       f"someone else changed the kdamonds; leaving them alone", nr_path)
        problem = self._ownership_problem()
        if problem:
            raise OSError(errno.EPERM, f"{problem}: not ours, leaving it alone", self.base)
        if self.state() == "on":
            self.command("off")
        self._write(nr_path, self.nr_before)
        self._forget()

    def _forget(self) -> None:
        self.removed = True
        if self._entry is not None:
            self._journal.remove(self._entry)
            self._entry = None
