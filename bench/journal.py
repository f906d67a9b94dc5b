"""The state journal: every change hotbench makes to global kernel state is written down
*before* it is made, so that it can be undone even when the process that made it was
killed (SIGKILL, the OOM killer, a crash) — the way a database journals before it writes
and recovers at its next start.

One file per change under ``/run/hotbench/journal/`` (a tmpfs: gone at reboot, as is the
state it describes; ``$HOTBENCH_STATE_DIR`` moves it, for tests), written atomically and
fsync'd before the change, naming its owner (``bench._owner.Owner``: pid, start time,
boot, host) and what to put back. Kinds:

  knob     a sysfs/procfs/debugfs file (``sysfs.Knobs``): path, old value, value now
  mount    a filesystem hotbench mounted (debugfs for ``--fault-around``, a private tracefs):
           target, fstype, and whether hotbench made the mount point (then removed too)
  trace-instance  a tracefs instance (``tracefs.Session``): its directory
  kdamond  a kdamond hotbench created (``damon_sysfs.OwnedKdamond``): its kdamonds/
           directory, index, nr_kdamonds before and as set, and as they become known its
           operations, target and kthread pid — what identifies it as hotbench's
  cgroup   a scratch memory cgroup (``cgroup.ScratchMemcg``): its directory, and the
           ``cgroup.subtree_control`` it wrote ``+memory`` to, if any

The entry is removed once the change is undone. ``bench.recovery.recover()`` — which every
command that changes or reads such state runs first — undoes the entries of owners that are
gone, one line each (what, from what, to what, whose), and reports those of live owners,
which it leaves alone (see there: an undo never clobbers someone else's later change). This
module only writes and reads entries, so the modules that make the changes record them
without importing what undoes them.

``Journal(directory, root)``: every path an entry names must lie under *root* (``/`` for
the real journal), so a test journal over a fake tree can never reach the real one.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench._owner import Owner

__all__ = ["DIR_ENV", "DEFAULT_DIR", "default_dir", "Entry", "Journal", "default", "KNOB", "MOUNT", "KDAMOND",
           "CGROUP", "TRACE_INSTANCE"]

DIR_ENV = "HOTBENCH_STATE_DIR"
DEFAULT_DIR = "/run/hotbench"
KNOB, MOUNT, KDAMOND, CGROUP, TRACE_INSTANCE = "knob", "mount", "kdamond", "cgroup", "trace-instance"
_PATH_FIELDS = ("path", "target", "kdamonds", "dir", "enabled_in")


def default_dir() -> Path:
    """``$HOTBENCH_STATE_DIR``, else /run/hotbench for root, else the user's runtime directory."""
    if os.environ.get(DIR_ENV):
        return Path(os.environ[DIR_ENV])
    if os.geteuid() == 0:
        return Path(DEFAULT_DIR)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "hotbench" if runtime else Path(f"/tmp/hotbench-{os.getuid()}")


@dataclass
class Entry:
    kind: str
    owner: Owner
    fields: dict
    file: Path
    created: int = 0  # time.time_ns() when recorded: entries are undone newest first
    extra: dict = field(default_factory=dict)

    def __getitem__(self, key: str):
        return self.fields.get(key)

    def describe(self) -> str:
        """What the entry is about, e.g. '/sys/kernel/mm/transparent_hugepage/enabled (madvise -> never)'."""
        f = self.fields
        if self.kind == KNOB:
            return f"{f['path']} ({f.get('old')} -> {f.get('now', f.get('new'))})"
        if self.kind == MOUNT:
            return f"{f.get('fstype')} mounted at {f['target']}"
        if self.kind == KDAMOND:
            what = "/".join(x for x in (f.get("operations"), f"target pid {f['target_pid']}"
                                        if f.get("target_pid") else None) if x) or "not configured yet"
            return f"kdamond {f['index']} ({what}) under {f['kdamonds']}"
        if self.kind == TRACE_INSTANCE:
            return f"tracefs instance {f['path']}"
        if self.kind == CGROUP:
            return f"memory cgroup {f['dir']}" + (f" (+memory in {f['enabled_in']})" if f.get("enabled_in") else "")
        return f"{self.kind} {f}"


class Journal:
    def __init__(self, directory: str | Path | None = None, root: str | Path = "/"):
        self.dir = Path(directory) if directory is not None else default_dir()
        self.root = os.path.abspath(root)
        self._seq = 0

    @property
    def entries_dir(self) -> Path:
        return self.dir / "journal"

    # ------------------------------------------------------------ writing

    def check_paths(self, fields: dict) -> None:
        """Refuse a path outside this journal's root (a test journal never reaches the real tree)."""
        for key in _PATH_FIELDS:
            value = fields.get(key)
            if value is None:
                continue
            path = os.path.abspath(str(value))
            if os.path.commonpath([path, self.root]) != self.root:
                raise ValueError(f"journal over {self.root} refuses {key} {path}: outside its root")

    def _write(self, path: Path, data: dict) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, (json.dumps(data, indent=1) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def record(self, kind: str, **fields) -> Entry:
        """Write the entry down (durably) — call before making the change it describes."""
        self.check_paths(fields)
        try:
            self.entries_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        except OSError as e:
            raise OSError(e.errno, f"cannot create the state journal, so the change could not be undone after a "
                                   f"crash: {e.strerror}", str(self.entries_dir)) from None
        owner = Owner.current()
        self._seq += 1
        created = time.time_ns()
        file = self.entries_dir / f"{created:020d}-{owner.pid}-{owner.start}-{self._seq}.json"
        entry = Entry(kind, owner, dict(fields), file, created)
        self._save(entry)
        return entry

    def _save(self, entry: Entry) -> None:
        self._write(entry.file, {"kind": entry.kind, "owner": entry.owner.as_dict(), "created": entry.created,
                                 "fields": entry.fields})

    def update(self, entry: Entry, **fields) -> None:
        """Add what became known after the change (a value read back, a kthread's pid)."""
        self.check_paths(fields)
        entry.fields.update(fields)
        self._save(entry)

    def remove(self, entry: Entry) -> None:
        """The change was undone (or is gone): forget it."""
        try:
            entry.file.unlink()
        except FileNotFoundError:
            pass

    # ------------------------------------------------------------ reading

    def entries(self) -> list[Entry]:
        """Every entry, oldest first (unreadable files are skipped: a torn write cannot exist,
        an entry of a newer hotbench may)."""
        try:
            names = sorted(n for n in os.listdir(self.entries_dir) if n.endswith(".json") and not n.startswith("."))
        except OSError:
            return []
        found = []
        for name in names:
            path = self.entries_dir / name
            try:
                data = json.loads(path.read_text())
                owner = Owner.from_dict(data["owner"])
                entry = Entry(str(data["kind"]), owner, dict(data["fields"]), path, int(data.get("created", 0)))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if owner is not None:
                found.append(entry)
        return sorted(found, key=lambda e: (e.created, e.file.name))

    def pending(self) -> tuple[list[Entry], list[Entry]]:
        """(entries whose owner is gone, entries whose owner still runs — or may: another host)."""
        dead, live = [], []
        for entry in self.entries():
            (dead if entry.owner.alive() is False else live).append(entry)
        return dead, live

def default() -> Journal:
    """The journal of this machine (or of ``$HOTBENCH_STATE_DIR``)."""
    return Journal()
