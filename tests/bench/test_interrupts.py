"""bench/interrupts.py: one policy for SIGINT, SIGTERM and SIGHUP — deferred inside critical
sections to the next safe point, immediate outside them, passed on to child processes, and
ending the command with 128 + the signal."""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench import interrupts

ROOT = Path(__file__).resolve().parents[2]


def _script(body: str) -> subprocess.CompletedProcess:
    code = "import os, signal, sys, time\nfrom bench import interrupts\n" + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("signum", interrupts.SIGNALS)
def test_a_signal_in_a_critical_section_waits_for_the_safe_point(signum):
    out = _script(f"""
        steps = []
        try:
            with interrupts.deferred("finishing the step"):
                os.kill(os.getpid(), {int(signum)})
                steps.append("after the signal")  # still running: deferred
                interrupts.check()
                steps.append("never")
        except interrupts.Interrupted as e:
            print(steps, e.signame)
            sys.exit(e.exit_status)
    """)
    name = signal.Signals(signum).name
    assert out.returncode == 128 + signum, out.stderr
    assert out.stdout.strip() == f"['after the signal'] {name}"
    assert f"hotbench: {name}: finishing the step, then restoring kernel state and stopping" in out.stderr


def test_the_end_of_the_outermost_section_is_a_safe_point_and_inner_ones_are_not():
    out = _script("""
        try:
            with interrupts.deferred("outer"):
                with interrupts.deferred("inner"):
                    os.kill(os.getpid(), signal.SIGHUP)
                print("inner ended", flush=True)
            print("never")
        except interrupts.Interrupted as e:
            sys.exit(e.exit_status)
    """)
    assert out.returncode == 129 and out.stdout == "inner ended\n", out


def test_outside_a_critical_section_a_signal_stops_at_once():
    out = _script("""
        interrupts.install()
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
            print("never")
        except interrupts.Interrupted as e:
            sys.exit(e.exit_status)
    """)
    assert out.returncode == 143 and "never" not in out.stdout


def test_signals_are_passed_on_to_a_child():
    out = _script("""
        import subprocess
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            with interrupts.deferred("waiting for the child"), interrupts.forwarding(child):
                os.kill(os.getpid(), signal.SIGTERM)
                print(child.wait(), flush=True)
        except interrupts.Interrupted as e:
            sys.exit(e.exit_status)
    """)
    assert out.returncode == 143 and out.stdout.strip() == str(-signal.SIGTERM), out


def test_library_use_restores_the_handlers_it_found():
    before = {sig: signal.getsignal(sig) for sig in interrupts.SIGNALS}
    with interrupts.deferred():
        pass
    assert {sig: signal.getsignal(sig) for sig in interrupts.SIGNALS} == before
    interrupts.check()  # nothing pending: no-op
