"""tracefs (Documentation/trace/ftrace.rst, Documentation/trace/events.rst): tracepoint
events recorded in a private trace instance, tracepoint ids, and the function profiler.

``Session`` mounts tracefs at a private temporary directory (the machine's own
``/sys/kernel/tracing`` mount, or its absence, is left as it is), makes an instance
``instances/hotbench-<pid>`` (its own ring buffer, event enables and filters, so nobody
else's tracing is disturbed), enables the named events with their filters, and on exit
removes the instance and unmounts. Mount and instance are in the state journal
(``bench.journal``) before they are made, so after a SIGKILL the next hotbench command removes
the instance (its ring buffer and enabled events would otherwise stay in the kernel) and the
mount. With lockdown=integrity tracefs works while debugfs and kprobes do not; the events
used here are static tracepoints.

``private_mount()`` is the one way hotbench mounts tracefs (journaled, undone on exit).
``event_id`` reads a tracepoint's id (``events/<system>/<name>/id``, the ``config`` of a
``PERF_TYPE_TRACEPOINT`` event for ``perf_event_open``), through ``mounted()``: the tracefs
already mounted, else a ``private_mount()`` for the block. ``FunctionProfiler``
drives the function profiler (``function_profile_enabled``, ``trace_stat/function<cpu>``) for
``hotbench run --kernel-profile``; it writes ``function_profile_enabled`` through
``sysfs.Knobs``, which puts it back on exit, on exception, at interpreter exit and on SIGTERM.

Failures: OSError from mount (EPERM: not root), from writing an event's ``enable`` or
``filter`` (ENOENT: no such event in this kernel; EINVAL: a bad filter); ``event_id`` raises
OSError naming the file (ENOENT: no such tracepoint in this kernel).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.kernel import libc, procfs, sysfs

__all__ = ["Event", "Session", "unavailable", "NR_ioctl", "parse", "FUNCTION_PROFILE_ENABLED", "mountpoint",
           "private_mount", "mounted", "event_id", "event_ids", "probe", "ProfileLine", "parse_function_stat",
           "FunctionProfiler", "profiler_reason"]

MNT_DETACH = 2  # <sys/mount.h>: lazy unmount

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
        self._journal = journal
        self._undo = contextlib.ExitStack()

    def __enter__(self) -> Session:
        from bench import journal as journal_mod

        self._journal = self._journal or journal_mod.default()
        try:
            self._mount = self._undo.enter_context(private_mount(self._journal))
            self._instance = Path(self._mount, "instances", f"hotbench-{os.getpid()}")
            entry = self._journal.record(journal_mod.TRACE_INSTANCE, path=str(self._instance))
            self._undo.callback(self._journal.remove, entry)
            self._instance.mkdir()
            self._undo.callback(self._instance.rmdir)  # the kernel disables the instance's events as it removes it
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
        self._mount = self._instance = None
        self._undo.close()  # instance, its journal entry, then the mount: the reverse of __enter__


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


# ---------------------------------------------------------------- tracepoint ids and the function profiler

FUNCTION_PROFILE_ENABLED = "function_profile_enabled"
TRACE_STAT = "trace_stat"

_ids: dict[tuple[str, str], int] = {}  # ids are fixed for the life of the running kernel


def mountpoint() -> str | None:
    """Where a tracefs is mounted (the first in /proc/self/mounts), or None."""
    for line in (procfs.read_text("/proc/self/mounts") or "").splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "tracefs":
            return fields[1]
    return None


@contextlib.contextmanager
def private_mount(journal=None) -> Iterator[str]:
    """tracefs mounted at a fresh temporary directory for the block. The mount is in the state
    journal (*journal*, by default ``bench.journal.default()``) before it is made, so the next
    hotbench command unmounts it if this process is killed."""
    from bench import journal as journal_mod

    journal = journal or journal_mod.default()
    where = tempfile.mkdtemp(prefix="hotbench-tracefs-")
    entry = journal.record(journal_mod.MOUNT, target=where, fstype="tracefs", made_dir=True)
    try:
        libc.mount("nodev", where, "tracefs")
        try:
            yield where
        finally:
            libc.umount2(where, MNT_DETACH)  # lazy: a file still open elsewhere cannot make it fail
    finally:
        os.rmdir(where)
        journal.remove(entry)


@contextlib.contextmanager
def mounted(journal=None) -> Iterator[str]:
    """A tracefs path for the block: the mounted one, else a ``private_mount``."""
    existing = mountpoint()
    if existing:
        yield existing
        return
    with private_mount(journal) as where:
        yield where


def event_ids(events: list[tuple[str, str]]) -> dict[tuple[str, str], int | OSError]:
    """Tracepoint ids of (system, name) pairs; an OSError in place of an id that could not be read."""
    out: dict[tuple[str, str], int | OSError] = {e: _ids[e] for e in events if e in _ids}
    wanted = [e for e in events if e not in out]
    if not wanted:
        return out
    try:
        with mounted() as root:
            for system, name in wanted:
                path = os.path.join(root, "events", system, name, "id")
                try:
                    with open(path) as f:
                        out[(system, name)] = _ids[(system, name)] = int(f.read())
                except OSError as e:
                    out[(system, name)] = OSError(e.errno, e.strerror, f"tracefs events/{system}/{name}/id")
    except OSError as e:
        failure = OSError(e.errno, e.strerror, e.filename)
        out.update({w: failure for w in wanted})
    return out


def event_id(system: str, name: str) -> int:
    found = event_ids([(system, name)])[(system, name)]
    if isinstance(found, OSError):
        raise found
    return found


def probe() -> str | None:
    """None when tracepoint ids can be read here, else why not."""
    if "tracefs" not in (procfs.read_text("/proc/filesystems") or "").split():
        return procfs.config_reason("no tracefs in /proc/filesystems", "CONFIG_TRACING")
    try:
        event_id("exceptions", "page_fault_user")
    except OSError as e:
        if e.filename and "events/" in str(e.filename):
            return None  # tracefs works; that one tracepoint is architecture-specific
        hint = " (needs root)" if os.geteuid() != 0 else ""
        return f"cannot mount or read tracefs: {e.strerror}{hint}"
    return None


# ---------------------------------------------------------------- function profiler

@dataclass(frozen=True)
class ProfileLine:
    """One function of ``trace_stat/function<cpu>``: calls and total time (ns of trace_clock:
    instructions in a QEMU icount guest at shift 0)."""

    function: str
    hits: int
    time_ns: float


_UNITS = {"us": 1e3, "ms": 1e6, "s": 1e9, "ns": 1.0}
_STAT_LINE = re.compile(r"^\s*(\S+)\s+(\d+)\s+([\d.]+)\s*(us|ms|ns|s)?\s")


def parse_function_stat(text: str) -> list[ProfileLine]:
    """``trace_stat/function<cpu>`` lines ("  Function  Hit  Time  Avg  s^2", then one row per
    function; times in us with three decimals)."""
    out = []
    for line in text.splitlines():
        m = _STAT_LINE.match(line + " ")
        if not m or m.group(1) == "Function":
            continue
        out.append(ProfileLine(m.group(1), int(m.group(2)), float(m.group(3)) * _UNITS[m.group(4) or "us"]))
    return out


def profiler_reason(root: str) -> str | None:
    """None when the function profiler can run under *root* (a tracefs path), else why not."""
    if not os.path.exists(os.path.join(root, FUNCTION_PROFILE_ENABLED)):
        return procfs.config_reason(f"no tracefs {FUNCTION_PROFILE_ENABLED}", "CONFIG_FUNCTION_PROFILER")
    try:
        with open(os.path.join(root, FUNCTION_PROFILE_ENABLED)) as f:
            f.read()
    except OSError as e:
        return f"cannot read tracefs {FUNCTION_PROFILE_ENABLED}: {e.strerror} (kernel lockdown?)"
    return None


class FunctionProfiler:
    """The ftrace function profiler around a phase: ``start()`` (enabling resets every CPU's
    table), ``stop()``, ``read()`` -> the per-function sums over every CPU.

    It counts every task on every CPU (it has no pid filter): in a one-vCPU guest that is the
    phase and the rare kernel thread that runs inside it. Enter it as a context manager: the
    profiler is switched off again (``sysfs.Knobs``) on every way out.
    """

    def __init__(self, root: str):
        self.root = root
        self.path = os.path.join(root, FUNCTION_PROFILE_ENABLED)
        self._knobs = sysfs.Knobs([self.path])

    def __enter__(self) -> FunctionProfiler:
        self._knobs.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._knobs.__exit__(*exc)

    def start(self) -> None:
        self._knobs.write(self.path, "1")

    def stop(self) -> None:
        self._knobs.write(self.path, "0")

    def read(self) -> list[ProfileLine]:
        stat_dir = os.path.join(self.root, TRACE_STAT)
        totals: dict[str, list[float]] = {}
        for name in sorted(os.listdir(stat_dir)):
            if not name.startswith("function"):
                continue
            with open(os.path.join(stat_dir, name)) as f:
                for line in parse_function_stat(f.read()):
                    hits_time = totals.setdefault(line.function, [0, 0.0])
                    hits_time[0] += line.hits
                    hits_time[1] += line.time_ns
        return [ProfileLine(fn, int(h), t) for fn, (h, t) in totals.items()]
