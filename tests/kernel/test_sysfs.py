"""The knob door and Knobs, on harmless files in a tmp dir (the door works on any path)."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench import recovery
from bench.kernel import sysfs

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def journal_dir(tmp_path, monkeypatch):
    """These knobs are files in a tmp dir: so is their state journal."""
    monkeypatch.setenv("HOTBENCH_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture
def knob(tmp_path):
    def make(name="knob", content="0x0000\n"):
        path = tmp_path / name
        path.write_text(content)
        return str(path)
    return make


def test_read_strips_and_missing_is_none(knob, tmp_path):
    assert sysfs.read(knob(content="  always [madvise] never\n")) == "always [madvise] never"
    assert sysfs.read(tmp_path / "absent") is None


def test_write_replaces_content(knob):
    path = knob(content="something long\n")
    sysfs.write(path, 7)
    assert Path(path).read_text() == "7"
    sysfs.write(path, b"y")
    assert Path(path).read_text() == "y"


def test_write_error_names_path_and_value_and_creates_nothing(tmp_path):
    missing = tmp_path / "no_such_knob"
    with pytest.raises(OSError) as info:
        sysfs.write(missing, "y")
    assert info.value.filename == str(missing)
    assert "'y'" in str(info.value) and str(missing) in str(info.value)
    assert not missing.exists()


def test_log_env_echoes_every_write(knob, monkeypatch, capfd):
    path = knob()
    monkeypatch.setenv(sysfs.LOG_ENV, "1")
    with sysfs.Knobs([path]) as k:
        k.write(path, "y")
    err = capfd.readouterr().err
    assert f"{path} <- 'y'" in err and f"{path} <- '0x0000'" in err  # the write and the restore
    monkeypatch.setenv(sysfs.LOG_ENV, "0")
    sysfs.write(path, "n")
    assert capfd.readouterr().err == ""


def test_knobs_restore_on_exit_in_reverse_order(knob, monkeypatch):
    a, b = knob("a", "0x0001\n"), knob("b", "100\n")
    order = []
    real_write = sysfs.write
    monkeypatch.setattr(sysfs, "write", lambda p, v: (order.append((p, v)), real_write(p, v)))
    with sysfs.Knobs([a, b]) as k:
        k.write(a, "0x0007")
        k.write(b, "5")
        k.write(a, "n")  # second write: snapshot kept from the first
        assert k.saved == {a: "0x0001", b: "100"}
    assert Path(a).read_text() == "0x0001" and Path(b).read_text() == "100"
    assert order[-2:] == [(b, "100"), (a, "0x0001")]


def test_knobs_restore_on_exception(knob):
    path = knob(content="always [madvise] never\n")
    with pytest.raises(RuntimeError, match="boom"):
        with sysfs.Knobs([path]) as k:
            k.write(path, "never")
            assert sysfs.read(path) == "never"
            raise RuntimeError("boom")
    assert sysfs.read(path) == "madvise"  # enum knobs come back by their bracketed choice


def test_restore_twice_is_safe_and_second_is_a_no_op(knob, monkeypatch):
    path = knob(content="1\n")
    k = sysfs.Knobs([path])
    k.write(path, "0")
    k.restore()
    assert sysfs.read(path) == "1"
    Path(path).write_text("changed by someone else")
    writes = []
    monkeypatch.setattr(sysfs, "write", lambda p, v: writes.append((p, v)))
    k.restore()
    k.restore()
    assert writes == [] and sysfs.read(path) == "changed by someone else"


def test_unchanged_knob_is_not_rewritten(knob, monkeypatch):
    path = knob(content="on\n")
    with sysfs.Knobs([path]) as k:
        k.write(path, "on")
        writes = []
        monkeypatch.setattr(sysfs, "write", lambda p, v: writes.append((p, v)))
    assert writes == []


def test_undeclared_and_unreadable_knobs_are_refused_before_any_write(knob, tmp_path):
    declared, other, absent = knob("declared"), knob("other", "keep\n"), str(tmp_path / "absent")
    with sysfs.Knobs([declared, absent]) as k:
        with pytest.raises(ValueError, match="not one of the knobs declared"):
            k.write(other, "x")
        with pytest.raises(OSError, match="cannot read the knob to snapshot it"):
            k.write(absent, "x")
        assert k.saved == {}
    assert sysfs.read(other) == "keep" and not os.path.exists(absent)


def test_restore_tries_every_knob_then_raises(knob):
    a, b = knob("a", "A\n"), knob("b", "B\n")
    k = sysfs.Knobs([a, b])
    k.write(a, "a2")
    k.write(b, "b2")
    os.unlink(b)  # b cannot be restored (the door never creates files) ...
    with pytest.raises(OSError, match="restoring knob failed") as info:
        k.restore()
    assert info.value.filename == b
    assert sysfs.read(a) == "A"  # ... a still was
    k.restore()  # and the failed attempt consumed the snapshots: nothing left to do


def test_restore_failure_does_not_mask_the_original_exception(knob):
    path = knob(content="A\n")
    with pytest.raises(KeyError) as info:
        with sysfs.Knobs([path]) as k:
            k.write(path, "B")
            os.unlink(path)
            raise KeyError("original")
    assert any("restoring knob failed" in note for note in getattr(info.value, "__notes__", []))


def test_knobs_restore_on_sigterm_at_the_next_safe_point(knob, journal_dir):
    """Under the signal policy a SIGTERM inside the block waits for the safe point, and the
    knob is restored on the way out: exit 143, knob as before, journal empty."""
    path = knob(content="0x0001\n")
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        from bench import interrupts
        from bench.kernel.sysfs import Knobs
        try:
            with interrupts.deferred(), Knobs([{path!r}]) as k:
                k.write({path!r}, "0x0007")
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.2)
                assert open({path!r}).read() == "0x0007"  # deferred: still set
                interrupts.check()
        except interrupts.Interrupted as e:
            sys.exit(e.exit_status)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=30,
                          env={**os.environ, "HOTBENCH_STATE_DIR": str(journal_dir)})
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert "SIGTERM" in proc.stderr
    assert sysfs.read(path) == "0x0001"
    assert not list((journal_dir / "journal").iterdir())


def test_knobs_journal_before_writing_and_forget_after_restoring(knob, journal_dir):
    from bench import journal

    path = knob(content="always [madvise] never\n")
    state = journal.Journal(journal_dir)
    with sysfs.Knobs([path], state) as k:
        k.write(path, "never")
        (entry,) = state.entries()
        assert entry.kind == journal.KNOB and entry["path"] == path
        assert entry["old"] == "madvise" and entry["now"] == "never"
        assert entry.owner.is_me()
    assert state.entries() == [] and sysfs.read(path) == "madvise"


def test_a_killed_knob_writer_is_undone_by_the_next_command(knob, journal_dir):
    """SIGKILL between write and restore: the journal entry names the dead process, and
    recover() writes the old value back, saying what, from what, to what and whose."""
    from bench import journal

    path = knob(content="0x0001\n")
    script = textwrap.dedent(f"""
        import os, signal
        from bench.kernel.sysfs import Knobs
        with Knobs([{path!r}]) as k:
            k.write({path!r}, "0x0007")
            print(os.getpid(), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=30,
                          env={**os.environ, "HOTBENCH_STATE_DIR": str(journal_dir)})
    assert proc.returncode == -signal.SIGKILL
    assert sysfs.read(path) == "0x0007"
    dead, live = journal.Journal(journal_dir).pending()
    assert len(dead) == 1 and not live
    lines = recovery.recover(journal.Journal(journal_dir))
    pid = proc.stdout.strip()
    assert lines == [f"hotbench: restored {path}: 0x0007 -> 0x0001 (left by pid {pid}, which is gone)"]
    assert sysfs.read(path) == "0x0001" and journal.Journal(journal_dir).entries() == []


def test_an_undo_never_clobbers_a_later_change(knob, journal_dir):
    from bench import journal

    path = knob(content="madvise\n")
    state = journal.Journal(journal_dir)
    entry = state.record(journal.KNOB, path=path, old="madvise", now="never")
    dead_owner = {"pid": 1, "start": -1, "boot_id": "", "host": os.uname().nodename}  # no process started at tick -1
    state._write(entry.file, {"kind": "knob", "owner": dead_owner, "created": 1, "fields": entry.fields})
    Path(path).write_text("always\n")  # someone else changed it after the dead run
    (line,) = recovery.recover(state)
    assert f"left {path} at always" in line and sysfs.read(path) == "always"
    assert state.entries() == []


def test_knobs_leave_signal_handlers_as_found(knob):
    path = knob()
    before = signal.getsignal(signal.SIGTERM)
    with sysfs.Knobs([path]) as k:
        k.write(path, "1")
    assert signal.getsignal(signal.SIGTERM) is before
