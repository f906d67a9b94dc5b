"""tracefs (Documentation/trace/ftrace.rst, Documentation/trace/events.rst): tracepoint
events with timestamps, recorded in a private trace instance.

``Session`` mounts tracefs at a private temporary directory (the machine's own
``/sys/kernel/tracing`` mount, or its absence, is left as it is), makes an instance
``instances/hotbench-<pid>`` (its own ring buffer, event enables and filters, so nobody
else's tracing is disturbed), enables the named events with their filters, and on exit
removes the instance and unmounts. Mount and instance are in the state journal
(``bench.journal``) before they are made, so after a SIGKILL the next hotbench command removes
the instance (its ring buffer and enabled events would otherwise stay in the kernel) and the
mount. With lockdown=integrity tracefs works while debugfs and kprobes do not; the events
used here are static tracepoints.

Failures: OSError from mount (EPERM: not root), from writing an event's ``enable`` or
``filter`` (ENOENT: no such event in this kernel; EINVAL: a bad filter).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Event", "Session", "unavailable", "NR_ioctl"]

# raw_syscalls/sys_enter's id of ioctl(2) (the per-syscall ``syscalls/sys_enter_ioctl`` event
# records nothing on the 6.18 host; the raw one does)
NR_ioctl = {"x86_64": 16, "aarch64": 29, "riscv64": 29, "loongarch64": 29}.get(os.uname().machine, 16)

# One line of the text ``trace`` file: "comm-pid [cpu] flags timestamp: event: fields".
_LINE = re.compile(r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+\S+\s+(?P<ts>\d+(?:\.\d+)?):\s+"
                   r"(?P<event>[\w:]+):\s?(?P<fields>.*)$")
_FIELD = re.compile(r"(\w+)=(\S+)")


@dataclass(frozen=True)
class Event:
    """One recorded event: its thread, CPU, time (ns on the trace clock), name and fields."""

    pid: int
    cpu: int
    ns: int
    name: str
    fields: dict[str, str]


def unavailable() -> str | None:
    """Why tracing cannot be used here (None: it can)."""
    if os.geteuid() != 0:
        return "tracefs needs root"
    if "tracefs" not in (Path("/proc/filesystems").read_text()):
        return "this kernel has no tracefs (CONFIG_TRACING is not set)"
    return None


class Session:
    """A private trace instance with *events* ({"group/name": filter or ""}) enabled."""

    def __init__(self, events: dict[str, str], buffer_kb: int = 8192, clock: str = "mono", journal=None):
        """*clock*: a ``trace_clock`` name. "mono" prints microseconds only; a counter clock
        ("x86-tsc") prints raw counts, which ``stop`` converts to ns by a calibration made
        with two ``trace_marker`` writes a measured CLOCK_MONOTONIC interval apart."""
        self._events, self._buffer_kb, self._clock = events, buffer_kb, clock
        self._mount: str | None = None
        self._instance: Path | None = None
        self._journal, self._entries = journal, {}

    def __enter__(self) -> Session:
        from bench import journal

        self._journal = self._journal or journal.default()
        try:
            self._mount = tempfile.mkdtemp(prefix="hotbench-tracefs-")
            self._entries["mount"] = self._journal.record(journal.MOUNT, target=self._mount, fstype="tracefs",
                                                          made_dir=True)
            subprocess.run(["mount", "-t", "tracefs", "nodev", self._mount], check=True, capture_output=True)
            self._instance = Path(self._mount, "instances", f"hotbench-{os.getpid()}")
            self._entries["instance"] = self._journal.record(journal.TRACE_INSTANCE, path=str(self._instance))
            self._instance.mkdir()
            self._write("buffer_size_kb", str(self._buffer_kb))
            self._write("trace_clock", self._clock)
            for name, condition in self._events.items():
                if condition:
                    self._write(f"events/{name}/filter", condition)
                self._write(f"events/{name}/enable", "1")
        except BaseException:
            self.__exit__()
            raise
        return self

    def _write(self, relative: str, value: str) -> None:
        path = self._instance / relative
        try:
            path.write_text(value)
        except OSError as e:
            raise OSError(e.errno, f"{e.strerror} (writing {value!r})", str(path)) from None

    def start(self) -> None:
        """Drop what was recorded so far and record from now on."""
        self._write("trace", "")
        self._write("tracing_on", "1")

    def stop(self) -> list[Event]:
        """Stop recording; the events recorded since ``start``, in time order, times in ns."""
        scale = self._counts_per_ns() if self._clock.endswith("tsc") or self._clock == "counter" else None
        self._write("tracing_on", "0")
        events = parse((self._instance / "trace").read_text())
        events = [e for e in events if e.name != "tracing_mark_write"]
        if scale:
            events = [Event(e.pid, e.cpu, round(e.ns / 1e9 / scale), e.name, e.fields) for e in events]
        return events

    def _counts_per_ns(self, gap_s: float = 0.02) -> float:
        """Clock counts per ns: two markers *gap_s* apart by CLOCK_MONOTONIC (before tracing stops)."""
        marker = self._instance / "trace_marker"
        with marker.open("w") as f:
            t0 = time.monotonic_ns()
            f.write("hotbench-calibrate-0\n")
            f.flush()
            time.sleep(gap_s)
            t1 = time.monotonic_ns()
            f.write("hotbench-calibrate-1\n")
            f.flush()
        marks = [e.ns for e in parse((self._instance / "trace").read_text()) if e.name == "tracing_mark_write"]
        return (marks[-1] - marks[0]) / 1e9 / (t1 - t0)

    def __exit__(self, *exc) -> None:
        if self._instance is not None and self._instance.exists():
            self._instance.rmdir()  # the kernel disables the instance's events as it removes it
        self._instance = None
        self._forget("instance")
        if self._mount is not None:
            subprocess.run(["umount", self._mount], capture_output=True)
            os.rmdir(self._mount)
            self._mount = None
        self._forget("mount")

    def _forget(self, what: str) -> None:
        entry = self._entries.pop(what, None)
        if entry is not None:
            self._journal.remove(entry)


def parse(text: str) -> list[Event]:
    """Events of a ``trace`` file's text (comment and unparsable lines skipped)."""
    out = []
    for line in text.splitlines():
        m = _LINE.match(line)
        if m is None:
            continue
        seconds, _, fraction = m["ts"].partition(".")
        ns = int(seconds) * 1_000_000_000 + int(fraction.ljust(9, "0")[:9])
        out.append(Event(int(m["pid"]), int(m["cpu"]), ns, m["event"], dict(_FIELD.findall(m["fields"]))))
    out.sort(key=lambda e: e.ns)
    return out
