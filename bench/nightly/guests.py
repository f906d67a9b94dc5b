"""Nightly suites that run inside guests: a suite with a ``[vm]`` table (``bench/suites/icount.toml``)
is run by ``hotbench nightly`` once per kernel it names, each in its own ``hotbench vm`` boot
(``--icount`` by default: the guest's costs are instruction counts, bench/clock.py), with the
history store shared read-write so every guest appends its run to it.

Kernels are named as the cache makes them: ``debian:7.3`` (Debian's packaged kernel, 'hotbench
kernel fetch debian:7.3') and ``build:7.3`` (linux-source-7.3 built with the project's config
fragment, 'hotbench kernel build --debian 7.3'); the newest cached entry of each is used. Every
guest is a machine of its own in the history (``<machine>-<kernel spec>/tcg-icount``), so each
kernel's runs form one series and 'hotbench compare latest~1 latest' stays within it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import TextIO

from bench import interrupts
from bench.errors import HotbenchError

__all__ = ["find_kernel", "guest_machine", "run_in_guests"]

_CHECKOUT = Path(__file__).resolve().parents[2]
_HOW = {"debian": "hotbench kernel fetch debian:{v}", "build": "hotbench kernel build --debian {v}"}


def find_kernel(spec: str):
    """(the newest cached ``bench.vm.kernels.Kernel`` for *spec*, None) or (None, the reason and the
    command that caches it). Raises HotbenchError for a spec that is neither kind."""
    from bench.vm import kernels

    kind, _, version = spec.partition(":")
    if kind not in _HOW or not version:
        raise HotbenchError(f"[vm] kernels: {spec!r} is not 'debian:VERSION' or 'build:VERSION'")

    def matches(k) -> bool:
        if k.meta.get("kind") != kind:
            return False
        if kind == "debian":
            return str(k.meta.get("version", "")).startswith(version)
        return str(k.meta.get("source", "")).startswith(f"linux-source-{version} ")

    found = [k for k in kernels.entries() if matches(k)]
    if found:
        return found[-1], None
    return None, f"{spec} is not in the kernel cache: run '{_HOW[kind].format(v=version)}'"


def guest_machine(spec: str, environ=os.environ) -> str:
    """The machine a guest's runs are filed under: this machine's name plus the kernel spec."""
    base = environ.get("HOTBENCH_MACHINE") or socket.gethostname().split(".")[0]
    return f"{base}-{spec.replace(':', '-')}"


def _guest_argv(suite, history: Path, quick: bool, bench: str | None, trackers: list[str] | None) -> list[str]:
    # a shipped suite by its name (the guest sees the same checkout), any other by its path
    name = suite.source if suite.source.startswith("/") else Path(suite.source).stem
    argv = ["python3", "-m", "bench", "nightly", "--suite", name, "--history", str(history)]
    argv += ["--quick"] if quick else []
    argv += ["--bench", bench] if bench else []
    argv += ["--trackers", ",".join(trackers)] if trackers else []
    return argv


def vm_argv(suite, spec: str, kernel, history: Path, quick: bool, bench: str | None = None,
            trackers: list[str] | None = None) -> list[str]:
    """The 'hotbench vm' command line that runs *suite* in a guest of *kernel*."""
    vm = suite.vm
    argv = [sys.executable, "-m", "bench", "vm", "--kernel", kernel.key, f"--icount={vm.get('icount', 0)}",
            "--mem", vm.get("mem", "1G"), "--share", str(history), "--env", f"HOTBENCH_MACHINE={guest_machine(spec)}"]
    argv += ["--cpus", str(vm["cpus"])] if vm.get("cpus") else []
    argv += ["--timeout", f"{vm['timeout']:g}"] if vm.get("timeout") else []
    if suite.source.startswith("/"):  # a suite file outside the package: the guest must see it
        argv += ["--share", str(Path(suite.source).parent)]
    return argv + ["--", *_guest_argv(suite, history, quick, bench, trackers)]


def run_in_guests(suite, history: Path, quick: bool = False, bench: str | None = None,
                  trackers: list[str] | None = None, log: TextIO = sys.stderr) -> list[dict]:
    """Boot each of the suite's kernels in turn and run the suite inside; per kernel
    ``{"kernel": spec, "key": cache key or None, "status": exit status, "reason": why it did not run}``."""
    history = Path(history).resolve()
    history.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for spec in suite.vm["kernels"]:
        kernel, reason = find_kernel(spec)
        if kernel is None:
            print(f"nightly: {reason}", file=log)
            outcomes.append({"kernel": spec, "key": None, "status": 1, "reason": reason})
            continue
        print(f"nightly: suite {suite.name} in a guest of {kernel.key} ({spec}), icount", file=log, flush=True)
        proc = subprocess.Popen(vm_argv(suite, spec, kernel, history, quick, bench, trackers), cwd=_CHECKOUT)
        # a signal goes to 'hotbench vm' too (it stops the guest's nightly at its safe point and QEMU);
        # the next kernel is not booted
        with interrupts.deferred("waiting for the guest's nightly to stop"), interrupts.forwarding(proc):
            proc.wait()
        interrupts.check()
        outcomes.append({"kernel": spec, "key": kernel.key, "status": proc.returncode,
                         "reason": None if proc.returncode == 0 else f"'hotbench vm' exited {proc.returncode}"})
    return outcomes
