"""Control groups, just enough to run this process in a memory cgroup of its own
(Documentation/admin-guide/cgroup-v2.rst; Documentation/admin-guide/cgroup-v1/memory.rst).

The memory controller lives in exactly one hierarchy: a v1 hierarchy mounted with the
``memory`` option when there is one (as on hosts still on the legacy layout), else the
cgroup2 mount. ``/proc/self/cgroup`` names this process's cgroup in it (``0::/path`` for v2,
``N:...memory...:/path`` for v1); that path, relative to the hierarchy's root, is also what
MGLRU's debugfs ``lru_gen`` prints for a memcg.

``ScratchMemcg`` creates a cgroup hotbench owns, moves this whole process (every thread:
``cgroup.procs``) into it, and on ``close()`` moves it back, removes the cgroup and undoes
the one hierarchy change it may have made. Where it goes:
- v2: cgroup v2 forbids processes in a cgroup whose ``cgroup.subtree_control`` enables a
  domain controller ("no internal processes", the root excepted), so the scratch cgroup is
  a *sibling* of the current one (a child of the root when this process is in the root).
  Its parent must delegate ``memory``: when the parent's ``cgroup.subtree_control`` lacks
  it, ``+memory`` is written there and ``-memory`` on close. A sibling is outside any limit
  the current cgroup imposed.
- v1: a *child* of the current memory cgroup (v1 allows processes in inner cgroups), so
  the current cgroup's limits still apply.
A memcg is charged when a page is allocated and the charge never moves with the process
(v2; v1 only with the deprecated ``move_charge_at_immigrate``): memory that must be
accounted to the scratch cgroup has to be allocated after ``enter()``.

The cgroup is in the state journal (``bench.journal``) before it is made, with the
``+memory`` it may write; after a crash the next hotbench command removes it if it is empty
(``remove_scratch``) and writes ``-memory`` back.

Writes go through ``bench.kernel.sysfs``. Failures raise OSError naming the file: EBUSY
(subtree_control while the parent has processes, rmdir while populated), EACCES/EPERM
(not root, or a delegation boundary), ENOENT (the controller is not mounted).
"""

from __future__ import annotations

import errno
import os
import posixpath
import time
from typing import NamedTuple

from bench.kernel import procfs, sysfs

__all__ = ["V1", "V2", "Hierarchy", "parse_mounts", "memory_hierarchy", "parse_proc_cgroup", "current_path",
           "ScratchMemcg", "remove_scratch"]

V1, V2 = "v1", "v2"
CGROUP_PROCS = "cgroup.procs"
SUBTREE_CONTROL = "cgroup.subtree_control"
CONTROLLERS = "cgroup.controllers"


class Hierarchy(NamedTuple):
    version: str  # V1 or V2
    mount: str  # where its root is mounted


def parse_mounts(text: str, controllers_of=None) -> Hierarchy | None:
    """The hierarchy holding the memory controller, from a /proc/self/mounts text.

    *controllers_of(mountpoint)* returns a cgroup2 root's ``cgroup.controllers`` (tests
    pass a fake); a cgroup2 mount counts only when ``memory`` is listed there.
    """
    controllers_of = controllers_of or (lambda mount: procfs.read_text(f"{mount}/{CONTROLLERS}") or "")
    v2 = None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        mount, fstype, options = fields[1], fields[2], fields[3].split(",")
        if fstype == "cgroup" and "memory" in options:
            return Hierarchy(V1, mount)
        if fstype == "cgroup2" and v2 is None and "memory" in controllers_of(mount).split():
            v2 = Hierarchy(V2, mount)
    return v2


def memory_hierarchy() -> Hierarchy | None:
    """Where this system's memory controller is mounted, or None."""
    return parse_mounts(procfs.read_text("/proc/self/mounts") or "")


def parse_proc_cgroup(text: str, version: str) -> str | None:
    """The cgroup path in *version*'s memory hierarchy from a /proc/PID/cgroup text."""
    for line in text.splitlines():
        hier, _, rest = line.partition(":")
        names, _, path = rest.partition(":")
        if version == V2 and hier == "0" and names == "":
            return path
        if version == V1 and "memory" in names.split(","):
            return path
    return None


def current_path(hierarchy: Hierarchy, pid: int | str = "self") -> str:
    """This process's cgroup in *hierarchy*, relative to its root ('/' for the root). OSError if none."""
    path = parse_proc_cgroup(procfs.read_text(f"/proc/{pid}/cgroup") or "", hierarchy.version)
    if path is None:
        raise OSError(errno.ENOENT, f"no {hierarchy.version} memory cgroup listed", f"/proc/{pid}/cgroup")
    return path


def _abs(hierarchy: Hierarchy, path: str) -> str:
    return posixpath.join(hierarchy.mount, path.lstrip("/")).rstrip("/") or "/"


class ScratchMemcg:
    """A memory cgroup created for this process; every step undone by ``close()``.

    >>> cg = ScratchMemcg("hotbench-mglru"); cg.create(); cg.enter()   # doctest: +SKIP
    >>> cg.path  # as lru_gen prints it, e.g. '/hotbench-mglru-1234-1'  # doctest: +SKIP
    >>> cg.close()                                                      # doctest: +SKIP
    """

    def __init__(self, prefix: str = "hotbench", hierarchy: Hierarchy | None = None, journal=None):
        self.prefix = prefix
        self.hierarchy = hierarchy
        self._journal = journal
        self._entry = None
        self.path: str | None = None  # relative to the hierarchy root
        self.origin: str | None = None  # the cgroup this process came from (relative)
        self._created = False
        self._entered = False
        self._enabled_in: str | None = None  # absolute subtree_control we wrote +memory to

    @property
    def dir(self) -> str | None:
        return _abs(self.hierarchy, self.path) if self.path else None

    def create(self) -> str:
        """mkdir the scratch cgroup (enabling ``memory`` in its v2 parent if needed); returns its path."""
        if self.hierarchy is None:
            self.hierarchy = memory_hierarchy()
            if self.hierarchy is None:
                raise OSError(errno.ENOENT, "no cgroup hierarchy has the memory controller (CONFIG_MEMCG off, "
                                            "or neither a v1 'memory' nor a cgroup2 mount lists it)",
                              "/proc/self/mounts")
        from bench import journal as journal_mod

        self.origin = current_path(self.hierarchy)
        if self.hierarchy.version == V2:
            parent = posixpath.dirname(self.origin) if self.origin != "/" else "/"
            control = posixpath.join(_abs(self.hierarchy, parent), SUBTREE_CONTROL)
            enable = "memory" not in (sysfs.read(control) or "").split()
        else:
            parent, control, enable = self.origin, None, False
        name = f"{self.prefix}-{os.getpid()}-{time.monotonic_ns() % 1_000_000_007}"
        self.path = posixpath.join(parent, name)
        self._journal = self._journal or journal_mod.default()
        self._entry = self._journal.record(journal_mod.CGROUP, dir=self.dir, enabled_in=control if enable else None)
        try:
            if enable:
                sysfs.write(control, "+memory")
                self._enabled_in = control
            os.mkdir(self.dir, 0o755)
        except BaseException:
            self.close()
            raise
        self._created = True
        return self.path

    def enter(self) -> None:
        """Move this whole process (all threads) into the scratch cgroup."""
        sysfs.write(posixpath.join(self.dir, CGROUP_PROCS), str(os.getpid()))
        self._entered = True

    def members(self) -> list[int]:
        """PIDs in the scratch cgroup now."""
        text = procfs.read_text(posixpath.join(self.dir, CGROUP_PROCS)) if self.dir else None
        return [int(p) for p in (text or "").split()]

    def close(self) -> None:
        """Move back, rmdir, undo ``+memory``. Idempotent; tries every step, raises the first failure."""
        errors: list[OSError] = []
        if self._entered:
            try:
                sysfs.write(posixpath.join(_abs(self.hierarchy, self.origin), CGROUP_PROCS), str(os.getpid()))
                self._entered = False
            except OSError as e:
                errors.append(e)
        if self._created and not self._entered:
            try:
                _rmdir(self.dir)
                self._created = False
            except OSError as e:
                errors.append(e)
        if self._enabled_in and not self._created:
            try:
                sysfs.write(self._enabled_in, "-memory")
                self._enabled_in = None
            except OSError as e:
                errors.append(e)
        if errors:
            raise errors[0]
        if self._entry is not None:
            self._journal.remove(self._entry)
            self._entry = None

    def __enter__(self) -> ScratchMemcg:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _rmdir(directory: str) -> None:
    """rmdir an empty cgroup (gone already is fine); OSError naming it otherwise."""
    for attempt in range(50):  # a just-emptied cgroup can be briefly busy
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or attempt == 49:
                raise OSError(e.errno, f"{e.strerror} (rmdir)", directory) from None
            time.sleep(0.02)


def remove_scratch(directory: str, enabled_in: str | None) -> str:
    """Undo a scratch cgroup a dead hotbench left (``bench.journal``): rmdir it if it is empty,
    then write ``-memory`` back where it wrote ``+memory``. Returns what was done, in one line;
    raises OSError when a step failed (the journal keeps the entry for another attempt)."""
    done = []
    if os.path.isdir(directory):
        members = (procfs.read_text(posixpath.join(directory, CGROUP_PROCS)) or "").split()
        if members:
            return f"left memory cgroup {directory} alone: it still holds processes {' '.join(members[:5])}"
        _rmdir(directory)
        done.append(f"removed memory cgroup {directory}: exists -> removed")
    else:
        done.append(f"memory cgroup {directory} is gone already")
    if enabled_in and "memory" in (sysfs.read(enabled_in) or "").split():
        sysfs.write(enabled_in, "-memory")
        done.append(f"{enabled_in}: +memory -> -memory")
    return "; ".join(done)
