"""Which process made something, in a form another process can check later: pid, the
process's start time, the boot and the host.

A pid alone is not an identity: pids are reused, so "is pid 1234 alive?" can answer yes
for a stranger. pid + ``starttime`` (``/proc/<pid>/stat`` field 22, clock ticks after boot)
names one process for the life of a boot, and the boot id (``/proc/sys/kernel/random/boot_id``)
tells a record made before a reboot. The state journal (``bench.journal``), the run lock
and every results manifest record an ``Owner``; a record whose owner is gone belongs to a
killed process.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from bench.kernel import procfs

__all__ = ["Owner"]


@dataclass(frozen=True)
class Owner:
    pid: int
    start: int  # /proc/<pid>/stat starttime, clock ticks after boot
    boot_id: str
    host: str

    @classmethod
    def current(cls) -> Owner:
        pid = os.getpid()
        return cls(pid, procfs.process_start_time(pid) or 0, procfs.boot_id() or "", os.uname().nodename)

    @classmethod
    def from_dict(cls, data: object) -> Owner | None:
        """The owner a record names, or None when it names none (or not in this form)."""
        if not isinstance(data, dict):
            return None
        try:
            return cls(int(data["pid"]), int(data["start"]), str(data.get("boot_id", "")), str(data.get("host", "")))
        except (KeyError, TypeError, ValueError):
            return None

    def as_dict(self) -> dict:
        return asdict(self)

    def alive(self) -> bool | None:
        """True while this very process runs, False once it is gone (also after a reboot), None
        when this machine cannot tell (the record was made on another host, e.g. a VM guest)."""
        if self.host != os.uname().nodename:
            return None
        if self.boot_id and self.boot_id != procfs.boot_id():
            return False
        return procfs.process_start_time(self.pid) == self.start

    def is_me(self) -> bool:
        return self == Owner.current()

    def describe(self) -> str:
        """'pid 1234' (what a user can look up with ps), plus the host when it is not this one."""
        return f"pid {self.pid}" + (f" on {self.host}" if self.host != os.uname().nodename else "")
