"""Two builds of one cache key never run at once: the second waits for the first's lock."""

import io
import subprocess
import sys

from bench.vm.kernels import Stopwatch, build


def test_second_build_of_a_key_waits_for_the_first(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    lock = tmp_path / "hotbench" / "build" / "k.lock"
    lock.parent.mkdir(parents=True)
    released = tmp_path / "released"
    # Another process holds the key's lock for a moment, as a running build would.
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time\n"
        f"f = open({str(lock)!r}, 'w'); fcntl.flock(f, fcntl.LOCK_EX)\n"
        "print('held', flush=True); time.sleep(1.0)\n"
        f"open({str(released)!r}, 'w').close(); fcntl.flock(f, fcntl.LOCK_UN)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        log = io.StringIO()
        with build._build_lock("k", Stopwatch("kernel build", log)):
            assert released.exists()  # we got the lock only after the holder let go of it
        assert "another process is building k; waiting for it" in log.getvalue()
    finally:
        holder.kill()
        holder.wait()


def test_an_uncontended_lock_says_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    log = io.StringIO()
    with build._build_lock("k", Stopwatch("kernel build", log)):
        pass
    assert log.getvalue() == ""
    assert (tmp_path / "hotbench" / "build" / "k.lock").exists()
