"""SIGINT a ``hotbench run`` of one tracker once the tracker has visibly taken kernel state
(an open bitmap, a memcg, a running kdamond), and return how the run ended."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]


def open_files(pid: int) -> set[str]:
    out = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            out.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return out


def sigint_run(tmp_path: Path, tracker: str, ready: Callable[[int], bool], backing: str = "anon",
               timeout: float = 600, extra_args: tuple[str, ...] = ()) -> tuple[int, str, bool]:
    """(exit status, stderr, whether *ready(pid)* was seen before the SIGINT)."""
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", "--out", str(tmp_path), "--trackers", tracker,
                             "--backing", backing, "--workloads", "uniform", "--size", "16M",
                             "--intervals", "100000", "--accesses", "2000", *extra_args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = False
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if ready(proc.pid):
                seen = True
                break
            time.sleep(0.1)
        time.sleep(0.5)  # let it run an interval or two
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=timeout)
        return proc.returncode, err, seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
