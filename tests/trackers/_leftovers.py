"""Does a tracker's ``stop`` leave the kernel as it found it? Three ways to end a run — normal
stop, an exception inside an interval, SIGINT of a ``hotbench run`` subprocess — and one
independent view of the result: the arena VMA's smaps VmFlags (``uw`` uffd-wp, ``ui``
uffd-minor, ``um`` uffd-missing, ``ur`` uffd-rwp on 7.3), its permissions and extent in
maps, pagemap bit 57 ("uffd-tracked": WP-protected or RWP-armed) over every page, the
process's open userfaultfds, and whether every page can be written again without a
fault handler.

The state is read right after ``stop`` returns, while the arena is still mapped (the runner
unmaps it afterwards): in-process through a wrapper around the tracker class's ``stop``;
for SIGINT the child pauses inside that wrapper while the parent reads ``/proc/<pid>``.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np

from bench.kernel import pagemap, procfs

ROOT = Path(__file__).resolve().parents[2]
UFFD_VMFLAGS = frozenset({"uw", "ui", "um", "ur"})  # ur = VM_UFFD_RWP ("mm: add VM_UFFD_RWP VMA flag", 7.3)
TOUCH_TIMEOUT = 120  # seconds; generous for TCG guests


def _perms(addr: int, pid) -> str | None:
    for line in (procfs.read_text(f"/proc/{pid}/maps") or "").splitlines():
        lo, _, hi = line.split()[0].partition("-")
        if int(lo, 16) <= addr < int(hi, 16):
            return line.split()[1]
    return None


def _uffd_fds(pid) -> int:
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[userfaultfd]"
        except OSError:
            pass
    return n


def snapshot(addr: int, npages: int, pid="self") -> dict:
    """What the kernel shows about the arena at *addr* and the process's userfaultfds (JSON-able)."""
    vma = procfs.smaps_vma(addr, pid) or {}
    entries = pagemap.read_entries(addr, npages, pid=pid)
    return {"flags": sorted(vma.get("VmFlags", [])), "range": list(vma.get("range", ())), "perms": _perms(addr, pid),
            "uffd_fds": _uffd_fds(pid),
            "uffd_tracked": int(np.count_nonzero(entries & np.uint64(pagemap.PM_UFFD_WP)))}


def assert_restored(before: dict, after: dict, ignore=frozenset()) -> None:
    """*after* (post-stop) shows nothing the tracker added to *before* (pre-start); *ignore*:
    VmFlags the mechanism changes irreversibly by design (``sd`` for clear_refs 4)."""
    assert not set(after["flags"]) & UFFD_VMFLAGS, f"userfaultfd VMA flags left: {after['flags']}"
    assert set(after["flags"]) - set(ignore) == set(before["flags"]) - set(ignore), (before["flags"], after["flags"])
    assert after["perms"] == before["perms"] and after["range"] == before["range"], (before, after)
    assert after["uffd_fds"] == before["uffd_fds"], f"userfaultfds open: {before['uffd_fds']} -> {after['uffd_fds']}"
    assert after["uffd_tracked"] == 0, f"{after['uffd_tracked']} pages still uffd-tracked (pagemap bit 57)"


def writable_without_handler(addr: int, size: int) -> bool:
    """Write every byte from a thread that has released the GIL (ctypes call): a page still
    registered for synchronous faults would block it, so a timeout means "left behind"."""
    done = threading.Event()

    def fill():
        ctypes.memset(addr, 0x5A, size)
        done.set()

    threading.Thread(target=fill, daemon=True).start()
    return done.wait(TOUCH_TIMEOUT)


class Watch:
    """Wraps a tracker class's ``start``/``arm``/``stop`` to record ``snapshot``s around them."""

    def __init__(self, monkeypatch, cls):
        self.before = self.armed = self.after = None
        self.writable = None
        start, arm, stop = cls.start, cls.arm, cls.stop
        watch = self

        def start_(tracker, arena):
            watch.arena = (arena.addr, arena.npages, arena.size)
            watch.before = snapshot(arena.addr, arena.npages)
            start(tracker, arena)

        def arm_(tracker):
            arm(tracker)
            if watch.armed is None:
                watch.armed = snapshot(*watch.arena[:2])

        def stop_(tracker):
            stop(tracker)
            if watch.after is None and watch.before is not None:
                watch.after = snapshot(*watch.arena[:2])
                watch.writable = writable_without_handler(watch.arena[0], watch.arena[2])

        monkeypatch.setattr(cls, "start", start_)
        monkeypatch.setattr(cls, "arm", arm_)
        monkeypatch.setattr(cls, "stop", stop_)


def failing_workloads(monkeypatch, at: int = 1):
    """Make every workload raise RuntimeError in interval *at*, after doing that interval's accesses."""
    import workloads

    create = workloads.create

    def create_(*args, **kwargs):
        w = create(*args, **kwargs)
        run_interval = w.run_interval

        def run_interval_(arena, i):
            result = run_interval(arena, i)
            if i == at:
                raise RuntimeError(f"workload failed in interval {i}")
            return result

        w.run_interval = run_interval_
        return w

    monkeypatch.setattr(workloads, "create", create_)


_CHILD = textwrap.dedent("""\
    import json, os, sys, time
    sys.path.insert(0, os.getcwd())
    from bench import trackers
    from tests.trackers import _leftovers

    name, backing, state = sys.argv[1], sys.argv[2], sys.argv[3]
    cls = trackers.get(name)
    start, arm, stop = cls.start, cls.arm, cls.stop
    seen = {}

    def start_(tracker, arena):
        seen["arena"] = (arena.addr, arena.npages, arena.size)
        seen["before"] = _leftovers.snapshot(arena.addr, arena.npages)
        start(tracker, arena)

    def arm_(tracker):
        arm(tracker)
        if "armed" not in seen:
            seen["armed"] = True
            with open(state + ".tmp", "w") as f:
                json.dump({"pid": os.getpid(), "arena": seen["arena"], "before": seen["before"]}, f)
            os.rename(state + ".tmp", state)

    def stop_(tracker):
        stop(tracker)
        if "arena" in seen and "stopped" not in seen:
            seen["stopped"] = True
            open(state + ".stopped", "w").close()
            while not os.path.exists(state + ".go"):  # the parent reads /proc/<pid> meanwhile
                time.sleep(0.05)
            addr, npages, size = seen["arena"]
            with open(state + ".writable", "w") as f:
                f.write(str(_leftovers.writable_without_handler(addr, size)))

    cls.start, cls.arm, cls.stop = start_, arm_, stop_
    from bench.cli import main
    sys.exit(main(["run", "--out", state + ".results", "--trackers", name, "--backing", backing,
                   "--workloads", "uniform", "--size", "16M", "--intervals", "100000", "--accesses", "2000"]))
    """)


def sigint_run(tmp_path: Path, name: str, backing: str, timeout: float = 600) -> dict:
    """``hotbench run`` of *name* in a child, SIGINT once it has armed; returns the child's
    pre-start snapshot, the parent's /proc/<pid> snapshots while armed and after stop, and
    the exit status and stderr."""
    state = str(tmp_path / "state")
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, name, backing, state], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        while not os.path.exists(state):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"child never armed: {proc.communicate(timeout=30)}")
            time.sleep(0.05)
        info = json.loads(Path(state).read_text())
        addr, npages, _ = info["arena"]
        armed = snapshot(addr, npages, proc.pid)
        proc.send_signal(signal.SIGINT)
        while not os.path.exists(state + ".stopped"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"child never stopped the tracker: {proc.communicate(timeout=30)}")
            time.sleep(0.05)
        after = snapshot(addr, npages, proc.pid)
        Path(state + ".go").touch()
        _, err = proc.communicate(timeout=timeout)
        writable = Path(state + ".writable").read_text() == "True"
        return {"before": info["before"], "armed": armed, "after": after, "returncode": proc.returncode,
                "stderr": err, "writable": writable}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
