"""``hotbench run`` through the CLI, in subprocesses: results written, bad input in one line, Ctrl-C safe."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bench import results

ROOT = Path(__file__).resolve().parents[2]


def hotbench(*args, timeout=300, **kw):
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, **kw)


@pytest.mark.parametrize("args,message", [
    (["--trackers", "nosuch"], "unknown tracker 'nosuch'"),
    (["--workloads", "zipff"], "unknown workload 'zipff'"),
    (["--size", "64Q"], "bad size '64Q'"),
    (["--size", "100T"], "is more than this machine can give"),
    (["--backing", "floppy"], "unknown backing 'floppy'"),
    (["--intervals", "0"], "--intervals and --repeats must be at least 1"),
    (["--affinity", "4096"], "--affinity 4096: this process may run only on CPUs"),
])
def test_bad_input_is_one_line(tmp_path, args, message):
    out = hotbench("run", "--out", str(tmp_path), *args)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: ") and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert not any(tmp_path.iterdir()), "no results directory for a run that never started"


DROP_PRIVILEGES = """
import os, sys
import bench.numba_cache
bench.numba_cache.ensure_writable()  # what main() does first; here before the imports that compile
import bench.cli.run, bench.cli.run, bench.runner, bench.environment, bench.results, bench.trackers, workloads
bench.trackers.registry(); workloads.names()  # import every plug-in module while /root is still readable
bench.runner.check_inputs(["uffd-wp"], list(bench.runner.DEFAULT_WORKLOADS), ["auto"], [256 << 20], 1, 1)  # numba's too
import pandas, pyarrow, platformdirs, bench.kernel.probe, analysis.tables
os.setgroups([]); os.setgid(65534); os.setuid(65534)
sys.exit(bench.cli.main(sys.argv[1:]))
"""


def test_unprivileged_run_says_root(tmp_path):
    """A real unprivileged user asking for a tracker that needs root gets one line saying so."""
    if os.geteuid() != 0:
        out = hotbench("run", "--out", str(tmp_path), "--trackers", "uffd-wp", "--intervals", "1")
    else:  # become nobody after the imports (the interpreter lives under /root)
        tmp_path.chmod(0o777)
        out = subprocess.run([sys.executable, "-c", DROP_PRIVILEGES, "run", "--out", str(tmp_path), "--trackers",
                              "uffd-wp", "--intervals", "1"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr
    last = out.stderr.splitlines()[-1]
    assert last.startswith("error: nothing to run") and "root" in last and "Traceback" not in out.stderr, out.stderr
    assert "skip uffd-wp: " in out.stderr


@pytest.mark.root
def test_run_writes_manifest_and_samples(tmp_path):
    out = hotbench("run", "--out", str(tmp_path), "--trackers", "uffd-wp,shmem-zap", "--workloads",
                   "uniform,hotcold", "--size", "16M", "--intervals", "2", "--accesses", "5000", "--affinity", "0")
    assert out.returncode == 0, out.stderr
    (run_dir,) = results.run_dirs(tmp_path)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["format_version"] == results.FORMAT_VERSION
    assert manifest["environment"]["cpu_affinity"] == [0]  # --affinity, applied before the run began
    assert manifest["environment"]["kernel_release"] == os.uname().release
    assert set(manifest["environment"]["kernel_facts"]) and manifest["command"][1:3] == ["run", "--out"]
    samples = pd.read_parquet(run_dir / "samples.parquet")
    required = ["run_id", "tracker", "workload", "backing", "size_bytes", "page_size", "interval", "truth_any",
                "truth_read", "truth_written", "reported", "tp", "fp", "fn", "tn", "wss_true", "wss_est", "arm_ns",
                "collect_ns", "workload_ns", "minor_faults", "status"]
    assert not set(required) - set(samples.columns)
    assert len(samples) == 2 * 2 * 2 and set(samples["tracker"]) == {"uffd-wp", "shmem-zap"}
    assert "precision" in out.stdout and str(run_dir) in out.stdout


@pytest.mark.root
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_leaves_valid_partial_results(tmp_path, signum):
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", "--out", str(tmp_path), "--trackers", "uffd-wp",
                             "--workloads", "uniform,zipf,hotcold,phase,scan", "--size", "64M", "--intervals", "40",
                             "--accesses", "200000"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until at least one cell's samples are on disk
        dirs = results.run_dirs(tmp_path)
        if dirs and (dirs[0] / "samples.parquet").exists():
            break
        time.sleep(0.1)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err and "partial results" in err and signal.Signals(signum).name in err
    (run_dir,) = results.run_dirs(tmp_path)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["signal"] == signal.Signals(signum).name
    samples = pd.read_parquet(run_dir / "samples.parquet")
    assert len(samples) >= 40 and (samples["status"] == "ok").all()


@pytest.mark.root
def test_settings_are_applied_recorded_and_restored(tmp_path):
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not thp.exists():
        pytest.skip("no THP on this kernel")
    before = thp.read_text()
    choice = "never" if "[never]" not in before else "madvise"
    out = hotbench("run", "--out", str(tmp_path), "--thp", choice, "--trackers", "uffd-wp", "--workloads", "uniform",
                   "--size", "8M", "--intervals", "1", "--accesses", "1000")
    assert out.returncode == 0, out.stderr
    assert thp.read_text() == before, "THP mode not restored"
    (run_dir,) = results.run_dirs(tmp_path)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["settings"]["thp"]["set"] == choice
    assert manifest["environment"]["thp_enabled"] == choice, "the environment must describe the regime measured"


def test_setting_absent_knob_is_one_line(tmp_path):
    if Path("/sys/kernel/mm/lru_gen/enabled").exists():
        pytest.skip("this kernel has MGLRU; the error path needs one without")
    out = hotbench("run", "--out", str(tmp_path), "--mglru", "on")
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "lru_gen/enabled does not exist" in out.stderr


@pytest.mark.root
def test_concurrent_mode_reports_slowdown_and_stalls(tmp_path):
    out = hotbench("run", "--mode", "concurrent", "--out", str(tmp_path), "--trackers", "uffd-wp", "--size", "16M",
                   "--duration", "0.6", "--pairs", "2", "--cycle", "50ms", "--threads", "2")
    assert out.returncode == 0, out.stderr
    (run_dir,) = results.run_dirs(tmp_path)
    samples = pd.read_parquet(run_dir / "samples.parquet")
    assert len(samples) == 2 and (samples["mode"] == "concurrent").all() and (samples["status"] == "ok").all()
    for column in ("baseline_aps", "throughput_aps", "lat_p50_ns", "lat_p99_ns", "lat_p999_ns", "lat_max_ns",
                   "tracker_cpu_ns_per_cycle", "arm_ns", "collect_ns"):
        assert (samples[column] > 0).all(), column
    assert (samples["cycles"] >= 1).all() and (samples["threads"] == 2).all() and (samples["cycle_ms"] == 50).all()
    latency = pd.read_parquet(run_dir / "latency.parquet")
    assert set(latency["tracker"]) == {"baseline", "uffd-wp"} and all(len(v) > 0 for v in latency["batch_ns"])
    assert json.loads((run_dir / "manifest.json").read_text())["overhead"]["pairs"] == 2
    assert "slowdown" in out.stdout


@pytest.mark.root
@pytest.mark.mechanism("uffd-wp")
def test_sweep_is_one_results_directory(tmp_path):
    out = hotbench("run", "--out", str(tmp_path), "--trackers", "uffd-wp", "--workloads", "uniform", "--size",
                   "8M,16M", "--threads", "1,2", "--intervals", "1", "--accesses", "2000")
    assert out.returncode == 0, out.stderr
    (run_dir,) = results.run_dirs(tmp_path)
    samples = pd.read_parquet(run_dir / "samples.parquet")
    params = samples["workload_params"].map(json.loads)
    assert sorted(zip(samples["size_bytes"], params.map(lambda p: p["threads"]))) == \
        [(8 << 20, 1), (8 << 20, 2), (16 << 20, 1), (16 << 20, 2)]
    # the summary keeps every swept dimension: one row per size and thread count, never averaged
    table = out.stdout.splitlines()
    assert table[0].split()[:5] == ["tracker", "workload", "backing", "size", "parameters"], table[0]
    rows = [line.split()[:5] for line in table[2:6]]
    assert rows == [["uffd-wp", "uniform", "anon", size, f"threads={t}"] for size in ("8M", "16M") for t in (1, 2)]
    # no terminal: one plain line per finished cell, naming every swept dimension
    progress = [line for line in out.stderr.splitlines() if line.startswith("[")]
    assert [line.split(":")[0] for line in progress] == [
        f"[{i + 1}/4] uffd-wp · uniform · anon · {size} · threads {t} · accesses 2000 · rep 1"
        for i, (size, t) in enumerate((s, t) for s in ("8M", "16M") for t in (1, 2))], progress
    assert "\x1b" not in out.stderr


@pytest.mark.root
@pytest.mark.mechanism("uffd-wp")
@pytest.mark.parametrize("columns", [80, 200])
def test_progress_in_a_terminal_fits_it(tmp_path, columns):
    """Under a pseudo-terminal (script(1)) of 80 and 200 columns: every redraw fits, names the
    cell and its interval, and the line is gone when the summary prints."""
    import re
    import shlex
    import shutil

    if not shutil.which("script"):
        pytest.skip("script(1) (util-linux) is not installed")
    command = shlex.join([sys.executable, "-m", "bench", "run", "--out", str(tmp_path), "--trackers", "uffd-wp",
                          "--workloads", "hotcold:hot=0.05,p=0.99", "--size", "8M,16M", "--repeats", "2",
                          "--intervals", "3", "--accesses", "2000"])
    out = subprocess.run(["script", "-qefc", command, "/dev/null"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "COLUMNS": str(columns), "TERM": "xterm"})
    assert out.returncode == 0, out.stdout
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.stdout)
    drawn = [line for line in re.split(r"[\r\n]", screen) if line.startswith("[") and "interval" in line]
    assert drawn and all(len(line) <= columns for line in drawn), [len(line) for line in drawn]
    cell = "uffd-wp · hotcold:hot=0.05,p=0.99 · anon · 16M · accesses 2000 · rep 2"
    if columns < 100:  # the middle of the cell's name gives way; its ends stay
        cell = re.escape(cell[:20]) + ".*….*" + re.escape(cell[-20:])
    else:
        cell = re.escape(cell)
    assert any(re.match(rf"\[\d/4\] {cell}  interval \d/3", line) for line in drawn), drawn
    summary = screen[screen.index("tracker"):]
    assert "interval" not in summary and "[4/4]" not in summary  # erased, not left above the table


@pytest.mark.root
def test_pages_are_kept_and_match_the_scores(tmp_path):
    import numpy as np

    out = hotbench("run", "--out", str(tmp_path), "--trackers", "uffd-wp,shmem-zap", "--workloads", "hotcold",
                   "--size", "8M", "--intervals", "2", "--accesses", "3000", "--pages")
    assert out.returncode == 0, out.stderr
    (run_dir,) = results.run_dirs(tmp_path)
    pages = pd.read_parquet(run_dir / "pages.parquet")
    samples = pd.read_parquet(run_dir / "samples.parquet")
    assert len(pages) == len(samples) == 4
    assert sorted(samples["cell"].unique()) == sorted(pages["cell"].unique()) == [0, 1]  # the join key
    bitmaps = pages[["cell", "interval", "npages", "reported", "truth_read", "truth_written"]].add_suffix("_bits")
    merged = bitmaps.merge(samples, left_on=["cell_bits", "interval_bits"], right_on=["cell", "interval"])
    assert len(merged) == 4
    for rec in merged.to_dict("records"):
        bits = lambda blob: np.unpackbits(np.frombuffer(blob, np.uint8), count=rec["npages"], bitorder="little")
        reported, written = bits(rec["reported_bits"]).astype(bool), bits(rec["truth_written_bits"]).astype(bool)
        truth = written if rec["sees"] == "writes" else written | bits(rec["truth_read_bits"]).astype(bool)
        assert int((reported & truth).sum()) == rec["tp"] and int((reported & ~truth).sum()) == rec["fp"]


def test_output_into_a_closed_pipe_is_quiet():
    """'hotbench ... | head': the reader is gone before hotbench writes; no traceback, exit 0."""
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", "--list"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader leaves at once
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err


@pytest.mark.root
@pytest.mark.mechanism("uffd-wp")
def test_workload_list_keeps_each_specs_parameters_and_interference_splits_labels(tmp_path):
    out = hotbench("run", "--out", str(tmp_path), "--trackers", "referenced", "--size", "8M", "--intervals", "2",
                   "--workloads", "hotcold:hot_count=64,p=0.99,uniform", "--interfere", "none,tlb-flush")
    assert out.returncode == 0, out.stderr
    from analysis import data

    loaded = data.load([tmp_path])
    assert set(loaded.samples["workload_spec"]) == {"hotcold:hot_count=64,p=0.99", "uniform"}
    assert set(loaded.samples["workload_label"]) == {"hotcold:hot_count=64,p=0.99", "uniform",
                                                      "hotcold:hot_count=64,p=0.99 +tlb-flush", "uniform +tlb-flush"}
