"""Fault injection through the CLI on real kernel interfaces: SIGKILL, SIGTERM and SIGHUP in the
middle of runs that change THP and NUMA balancing, lockstep (1 and 2 workload threads),
concurrent and eviction runs, overlapping knob runs, and bad input. Every scenario must end
with the kernel as it was (or restored by the next command, which says so), the finished
work readable, and the documented exit status — never a segfault or a traceback.

Each test gives its commands a private state journal and run lock ($HOTBENCH_STATE_DIR), so
that what it asserts about them cannot be taken by another hotbench command running on the
same machine; the knobs themselves are the real ones, put back in a ``finally`` whatever
happens, and while a test changes them it holds the machine's run lock (``knob``).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import results, runlock

ROOT = Path(__file__).resolve().parents[2]
THP = "/sys/kernel/mm/transparent_hugepage/enabled"
NUMA = "/proc/sys/kernel/numa_balancing"
LONG_RUN = ["run", "--trackers", "uffd-wp", "--workloads", "uniform", "--size", "16M", "--intervals", "100000",
            "--accesses", "2000"]


def _read(path):
    text = Path(path).read_text().strip()
    return text[text.index("[") + 1:text.index("]")] if "[" in text else text


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "HOTBENCH_STATE_DIR": str(tmp_path / "state")}


@pytest.fixture
def knob():
    """(path, value before, the --option and value that changes it); written back afterwards.
    The test holds the machine's own run lock exclusively meanwhile: its commands lock only a
    private directory, and another hotbench command (someone else's micro or run) must not
    measure under a knob the test changes."""
    saved = {}
    machine_lock = runlock.RunLock()

    def choose(name):
        path = THP if name == "thp" else NUMA
        if not os.path.exists(path):
            pytest.skip(f"no {path} on this kernel")
        if machine_lock.mode is None:
            machine_lock.acquire(exclusive=True, what="tests/cli/test_faults.py (changes THP or NUMA balancing)")
        before = _read(path)
        saved[path] = before
        if name == "thp":
            return path, before, ["--thp", "never" if before != "never" else "madvise"]
        return path, before, ["--numa-balancing", "on" if before == "0" else "off"]

    try:
        yield choose
    finally:
        for path, before in saved.items():
            if _read(path) != before:
                Path(path).write_text(before)
        machine_lock.release()


def hotbench(*args, env, timeout=600):
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def start(*args, env):
    return subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(what, predicate, proc, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"exited {proc.returncode} before {what}: {proc.stderr.read()[-2000:]}")
        time.sleep(0.1)
    pytest.fail(f"no {what} within {timeout} s")


def run_dir_of(out: Path) -> Path:
    (run_dir,) = results.run_dirs(out)  # not the 'latest' link, nor an experiment step's stdout.txt beside it
    return run_dir


def intervals_kept(out: Path) -> bool:
    """At least one finished interval of the cell in progress is on disk."""
    return out.is_dir() and any((d / results.PARTIAL).exists() or (d / results.SAMPLES).exists()
                                for d in out.iterdir())


def assert_clean_exit(proc, err, signum):
    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err and "Segmentation" not in err and "Fatal Python error" not in err, err
    assert err.rstrip().splitlines()[-1].startswith(f"error: interrupted by {name}"), err


# ---------------------------------------------------------------- SIGKILL: the next command restores

@pytest.mark.root
@pytest.mark.parametrize("name,next_command", [("thp", "restore"), ("thp", "run"), ("numa-balancing", "restore")])
def test_sigkill_leaves_the_knob_to_the_next_command(tmp_path, env, knob, name, next_command):
    path, before, option = knob(name)
    out = tmp_path / "out"
    proc = start(*LONG_RUN, *option, "--out", str(out), env=env)
    try:
        wait_for("a finished interval", lambda: intervals_kept(out), proc)
        changed = _read(path)
        assert changed != before
    finally:
        proc.kill()
        proc.wait()
    assert _read(path) == changed, "SIGKILL runs no cleanup: the knob stays changed until the next command"

    probe = hotbench("probe", env=env)
    assert f"not restored: {path} ({before} -> {changed}), left by pid {proc.pid}, which was killed" in probe.stdout

    if next_command == "restore":
        done = hotbench("restore", env=env)
    else:
        done = hotbench("run", "--trackers", "uffd-wp", "--workloads", "uniform", "--size", "8M", "--intervals", "1",
                        "--accesses", "1000", "--out", str(tmp_path / "next"), env=env)
        manifest = results.load_manifest(run_dir_of(tmp_path / "next"))
        assert manifest["environment"]["thp_enabled"] == before, "the next run measured the killed run's regime"
    assert done.returncode == 0, done.stderr
    assert f"hotbench: restored {path}: {changed} -> {before} (left by pid {proc.pid}, which is gone)" \
        in done.stderr.splitlines()
    assert _read(path) == before
    assert hotbench("restore", "--list", env=env).stdout.startswith("nothing pending")

    killed = results.load_manifest(run_dir_of(out))
    samples = results.load_samples(run_dir_of(out))
    assert len(samples) >= 1 and samples["partial"].all() and (samples["status"] == "ok").all()
    # (the manifest may count one interval less than partial.json: SIGKILL can fall between their writes)
    assert re.match(rf"killed after 0 of 1 cells, and \d+ finished intervals? of cell 1 \(kept, marked partial\) "
                    rf"\(pid {proc.pid} is gone", results.status_line(killed)), results.status_line(killed)


@pytest.mark.root
def test_a_killed_run_reads_as_killed_in_the_report(tmp_path, env):
    out = tmp_path / "out"
    proc = start(*LONG_RUN, "--out", str(out), env=env)
    try:
        wait_for("a finished interval", lambda: intervals_kept(out), proc)
    finally:
        proc.kill()
        proc.wait()
    report = hotbench("report", str(out), "--out", str(tmp_path / "report"), env=env)
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    assert re.search(rf"killed after 0 of 1 cells, and \d+ finished intervals? of cell 1 \(kept, marked partial\) "
                     rf"\(pid {proc.pid} is gone", text), text


# ---------------------------------------------------------------- SIGHUP and SIGTERM: a clean stop

@pytest.mark.root
@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM])
@pytest.mark.parametrize("threads", ["1", "2"])
def test_signal_during_lockstep(tmp_path, env, knob, signum, threads):
    path, before, option = knob("thp")
    out = tmp_path / "out"
    proc = start(*LONG_RUN, "--threads", threads, *option, "--out", str(out), env=env)
    wait_for("a finished interval", lambda: intervals_kept(out), proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=300)
    assert_clean_exit(proc, err, signum)
    assert _read(path) == before and not list((tmp_path / "state" / "journal").iterdir())
    manifest = results.load_manifest(run_dir_of(out))
    assert manifest["status"] == "interrupted" and manifest["signal"] == signal.Signals(signum).name
    samples = results.load_samples(run_dir_of(out))
    assert len(samples) >= 1 and samples["partial"].all() and (samples["status"] == "ok").all()
    assert not (run_dir_of(out) / results.PARTIAL).exists()


@pytest.mark.root
@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM])
def test_signal_during_concurrent(tmp_path, env, knob, signum):
    """The SIGHUP that crashed concurrent runs (exit 139, THP left 'never'): workload threads are
    joined before the arena goes, the pairs that finished are kept."""
    path, before, option = knob("thp")
    out = tmp_path / "out"
    proc = start("run", "--mode", "concurrent", "--trackers", "uffd-wp", "--size", "16M", "--duration", "1",
                 "--pairs", "20", "--threads", "2", *option, "--out", str(out), env=env)
    wait_for("a finished A/B pair", lambda: intervals_kept(out), proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=300)
    assert_clean_exit(proc, err, signum)
    assert _read(path) == before
    samples = results.load_samples(run_dir_of(out))
    assert len(samples) >= 1 and (samples["mode"] == "concurrent").all()
    assert (run_dir_of(out) / results.LATENCY).exists()


@pytest.mark.root
@pytest.mark.mechanism("uffd-wp")
@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM])
def test_signal_during_evict_keeps_the_variants_that_finished(tmp_path, env, signum):
    rows = tmp_path / "rows.json"
    proc = start("evict", "--variant", "none,uffd-wp,racy", "--size", "8M", "--rounds", "40", "--interval", "50ms",
                 "--out", str(rows), env=env)
    wait_for("the first variant's rows", rows.exists, proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=300)
    assert_clean_exit(proc, err, signum)
    data = json.loads(rows.read_text())
    assert data["version"] == results.EVICTION_VERSION and {r["variant"] for r in data["rows"]} >= {"none"}
    assert len(results.load_eviction(rows)) == len(data["rows"])


# ---------------------------------------------------------------- two knob runs at once

@pytest.mark.root
def test_overlapping_knob_runs_take_turns(tmp_path, env, knob):
    """The second --thp run waits for the first to restore; it records and restores the value the
    machine really had, never the first run's."""
    path, before, option = knob("thp")
    first = start(*LONG_RUN, *option, "--out", str(tmp_path / "first"), env=env)
    wait_for("the first run's intervals", lambda: intervals_kept(tmp_path / "first"), first)
    second = start("run", "--trackers", "uffd-wp", "--workloads", "uniform", "--size", "8M", "--intervals", "2",
                   "--accesses", "1000", *option, "--out", str(tmp_path / "second"), env=env)
    try:
        line = second.stderr.readline()
        assert line.startswith(f"hotbench: waiting for pid {first.pid} (hotbench run --trackers uffd-wp"), line
        refused = hotbench(*LONG_RUN, *option, "--no-wait", "--out", str(tmp_path / "third"), env=env)
        assert refused.returncode == 1 and refused.stderr.startswith(f"error: the run lock is held by pid {first.pid}")
        assert not (tmp_path / "third").exists() and not (tmp_path / "second").exists()
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=300)
        assert first.returncode == 143, err
        _, err = second.communicate(timeout=300)
        assert second.returncode == 0, err
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert _read(path) == before
    settings = results.load_manifest(run_dir_of(tmp_path / "second"))["settings"]["thp"]
    assert _read_choice(settings["was"]) == before and settings["now"] != settings["was"]


def _read_choice(text):
    return text[text.index("[") + 1:text.index("]")] if "[" in text else text


# ---------------------------------------------------------------- bad input: one line, nothing left

@pytest.mark.parametrize("args,message", [
    (["--workloads", "masim:config=/nonexistent"], "masim: config file '/nonexistent' not found"),
    (["--workloads", "zipf:s=abc"], "zipf: s must be a finite number, got 'abc'"),
    (["--write-ratio", "2"], "write_ratio must be in [0, 1], got 2"),
    (["--size", "1000", "--backing", "anon"], "arena size 1000 must be a positive multiple of 4K for anon"),
    (["--size", "3M", "--backing", "thp"], "must be a positive multiple of 2M for thp"),
    (["--mode", "concurrent", "--pairs", "0"], "--pairs at least 1"),
    (["--seed", "-1"], "--seed -1: a seed must be in [0, 18446744073709551615]"),
    (["--seed", str((1 << 64) - 1), "--repeats", "2"], "and so must seed + 1 (repeat r uses seed + r)"),
])
def test_bad_run_input_is_one_line_and_leaves_nothing(tmp_path, env, args, message):
    out = hotbench("run", "--trackers", "uffd-wp", "--intervals", "1", "--thp", "never", "--out", str(tmp_path / "o"),
                   *args, env=env)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1 and message in out.stderr, out.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "state" / "journal").exists()


@pytest.mark.parametrize("args,message", [
    (["--size", "1000"], "must be a positive multiple of 4K"),
    (["--hot-frac", "2"], "--hot-frac must be in [0, 1]"),
    (["--rounds", "0"], "must be at least 1"),
    (["--variant", "nosuch"], "unknown variant nosuch"),
    (["--out", "rows.txt"], "use a .json, .csv or .parquet name"),
    (["--seed", "-1"], "--seed -1: a seed must be in"),
    (["--out", "/nonexistent/rows.json"], "--out /nonexistent/rows.json: no directory /nonexistent;"),
])
def test_bad_evict_input_is_one_line(tmp_path, env, args, message):
    out = hotbench("evict", *args, env=env)
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and message in out.stderr, out.stderr


def test_an_experiment_with_a_bad_step_argument_creates_nothing(tmp_path, env):
    spec = tmp_path / "mine.toml"
    spec.write_text('title = "t"\nquestion = "q"\n[[steps]]\nname = "a"\ncommand = "run"\n'
                    'args = { trackers = "uffd-wp", intervals = 1 }\n[[steps]]\nname = "b"\ncommand = "run"\n'
                    'args = { workloads = "zipf:s=abc" }\n')
    out = hotbench("experiment", str(spec), "--out", str(tmp_path / "exp"), env=env)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert "step b (run): zipf: s must be a finite number" in out.stderr
    assert not (tmp_path / "exp").exists()


# ---------------------------------------------------------------- commands that run others

@pytest.mark.root
def test_sigterm_to_an_experiment_stops_its_step_and_keeps_the_record(tmp_path, env, knob):
    """Only the experiment gets the signal (not its process group): it passes it on to the step,
    which restores its knob; the record names the signal, the step's directory is a valid run."""
    path, before, option = knob("thp")
    spec = tmp_path / "mine.toml"
    spec.write_text('title = "t"\nquestion = "q"\n[[steps]]\nname = "long"\ncommand = "run"\n'
                    'args = { trackers = "uffd-wp", workloads = "uniform", size = "16M", intervals = 100000, '
                    f'accesses = 2000, thp = "{option[1]}" }}\n')
    out = tmp_path / "exp"
    proc = start("experiment", str(spec), "--out", str(out), env=env)
    wait_for("the step's intervals", lambda: intervals_kept(out / "steps" / "long"), proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert_clean_exit(proc, err, signal.SIGTERM)
    assert _read(path) == before
    record = results.load_experiment(out)
    assert record["status"] == "interrupted" and record["signal"] == "SIGTERM"
    assert record["steps"][0]["status"] == "interrupted by SIGTERM"
    step_run = run_dir_of(out / "steps" / "long")
    assert results.load_manifest(step_run)["signal"] == "SIGTERM" and len(results.load_samples(step_run)) >= 1


@pytest.mark.root
@pytest.mark.mechanism("uffd-wp")
def test_sigterm_to_micro_stops_its_worker(tmp_path, env):
    out = tmp_path / "micro.json"
    proc = start("micro", "--bench", "^fault/first-touch/4k$", "--fault-size", "64M", "--values", "50",
                 "--processes", "20", "--loops", "1", "-o", str(out), env=env)
    wait_for("a pyperf worker", lambda: bool(children_of(proc.pid)), proc)
    workers = children_of(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert_clean_exit(proc, err, signal.SIGTERM)
    assert not [w for w in workers if os.path.exists(f"/proc/{w}")], "a pyperf worker outlived its manager"


def children_of(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and int(Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(name))
        except (OSError, IndexError, ValueError):
            pass
    return found
