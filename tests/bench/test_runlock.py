"""bench/runlock.py: knob-changing commands exclude each other and every reader; readers share.
A waiting command says whom it waits for; --no-wait refuses in one line; a signal ends the wait."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from bench import runlock

ROOT = Path(__file__).resolve().parents[2]


def _holder(state: Path, mode: str) -> subprocess.Popen:
    """Another process holding the lock in *mode* until its stdin closes."""
    code = textwrap.dedent(f"""
        import sys
        from bench import runlock
        runlock.RunLock({str(state)!r}).acquire(exclusive={mode == 'exclusive'}, what="a test holder")
        print("held", flush=True)
        sys.stdin.read()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline() == "held\n"
    return proc


def _release(proc):
    proc.stdin.close()
    proc.wait(timeout=30)


def test_readers_share_and_a_writer_is_refused_without_waiting(tmp_path):
    reader = _holder(tmp_path, "shared")
    try:
        lock = runlock.RunLock(tmp_path)
        assert lock.acquire(exclusive=False, wait=False)  # shared beside shared
        lock.release()
        with pytest.raises(Exception, match=r"the run lock is held by pid \d+ \("):
            runlock.RunLock(tmp_path).acquire(exclusive=True, wait=False)
    finally:
        _release(reader)
    lock = runlock.RunLock(tmp_path)
    assert lock.acquire(exclusive=True, wait=False)  # free once the reader is gone
    lock.release()


def test_a_reader_waits_with_a_message_until_the_writer_is_done(tmp_path, capsys):
    writer = _holder(tmp_path, "exclusive")
    threading.Timer(1.0, _release, (writer,)).start()
    t0 = time.monotonic()
    lock = runlock.RunLock(tmp_path)
    assert lock.acquire(exclusive=False, wait=True)
    assert time.monotonic() - t0 >= 0.5
    assert f"waiting for pid {writer.pid} (" in capsys.readouterr().err
    lock.release()


def test_the_holder_dying_by_sigkill_frees_the_lock(tmp_path):
    writer = _holder(tmp_path, "exclusive")
    writer.kill()
    writer.wait()
    assert len(os.listdir(tmp_path / "holders")) == 1  # a killed holder cannot remove its description
    lock = runlock.RunLock(tmp_path)
    assert lock.acquire(exclusive=True, wait=False) and lock.holders() == []
    assert os.listdir(tmp_path / "holders") == [f"{os.getpid()}-{_start()}.json"]  # the dead one's is swept
    lock.release()
    assert os.listdir(tmp_path / "holders") == []


def _start():
    from bench.kernel import procfs
    return procfs.process_start_time(os.getpid())


def test_a_command_that_exits_leaves_no_description(tmp_path):
    code = "from bench import recovery; recovery.command_lock(exclusive=False, what='a test command')"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120,
                   env={**os.environ, "HOTBENCH_STATE_DIR": str(tmp_path)})
    assert os.listdir(tmp_path / "holders") == []


KNOB_RUN = ["run", "--trackers", "uffd-wp", "--workloads", "uniform", "--size", "8M", "--intervals", "1",
            "--accesses", "1000", "--thp", "never"]


@pytest.mark.root
def test_a_knob_run_refuses_in_one_line_with_no_wait(tmp_path):
    writer = _holder(tmp_path / "state", "shared")  # even a reader: the knob would change under it
    try:
        out = subprocess.run([sys.executable, "-m", "bench", *KNOB_RUN, "--no-wait", "--out", str(tmp_path / "out")],
                             cwd=ROOT, capture_output=True, text=True, timeout=300,
                             env={**os.environ, "HOTBENCH_STATE_DIR": str(tmp_path / "state")})
    finally:
        _release(writer)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith(f"error: the run lock is held by pid {writer.pid}") and "--no-wait" in out.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.root
@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM])
def test_a_knob_run_waiting_for_the_lock_ends_on_a_signal_having_changed_nothing(tmp_path, signum):
    writer = _holder(tmp_path / "state", "exclusive")
    try:
        proc = subprocess.Popen([sys.executable, "-m", "bench", *KNOB_RUN, "--out", str(tmp_path / "out")], cwd=ROOT,
                                env={**os.environ, "HOTBENCH_STATE_DIR": str(tmp_path / "state")},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stderr.readline()
        assert line.startswith(f"hotbench: waiting for pid {writer.pid} ("), line
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        _release(writer)
    assert proc.returncode == 128 + signum and err == f"error: interrupted by {signal.Signals(signum).name}\n"
    assert not (tmp_path / "out").exists()  # stopped before anything was written or changed
