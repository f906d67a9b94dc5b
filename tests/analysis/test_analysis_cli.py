"""``hotbench report`` and ``hotbench plot`` through the CLI, in subprocesses."""

import subprocess
import sys
from pathlib import Path

import pytest

import hb_synth

ROOT = Path(__file__).resolve().parents[2]


def hotbench(*args, timeout=600):
    return subprocess.run([sys.executable, "-W", "error::UserWarning", "-m", "bench", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return hb_synth.make_tree(root)


def test_help_stays_light():
    code = ("import sys; from bench.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('pandas', 'matplotlib', 'scipy', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
    help_text = hotbench("--help").stdout
    assert "report" in help_text and "plot" in help_text


@pytest.mark.parametrize("args,message", [
    (["report", "{missing}"], "is not a hotbench results directory"),
    (["plot", "{missing}"], "is not a hotbench results directory"),
    (["plot", "{run}", "--figure", "nosuch"], "unknown figure 'nosuch'"),
    (["plot", "{run}", "--format", "gif"], "unknown format 'gif'"),
    (["report", "{bad}"], "results format version 99"),
    (["plot"], "name at least one RUN_DIR"),
    (["report", "{torn}"], "cannot read samples.parquet"),
])
def test_bad_input_is_one_line(runs, tmp_path, args, message):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text('{"format_version": 99}')
    torn = tmp_path / "torn"
    torn.mkdir()
    (torn / "manifest.json").write_bytes((runs[0] / "manifest.json").read_bytes())
    (torn / "samples.parquet").write_bytes((runs[0] / "samples.parquet").read_bytes()[:1000])
    args = [a.format(missing=tmp_path / "nope", run=runs[0], bad=bad, torn=torn) for a in args]
    out = hotbench(*args)
    assert out.returncode == 1, out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: ") and message in out.stderr, out.stderr


@pytest.fixture(scope="module")
def bare_run(tmp_path_factory):
    """One kernel, lockstep samples and manifest only (quick to report on)."""
    run = hb_synth.make_run(tmp_path_factory.mktemp("bare"), *hb_synth.KERNELS[0])
    for name in ("pages.parquet", "latency.parquet", "eviction.parquet", "micro.json"):
        (run / name).unlink()
    return run


def test_figure_the_data_cannot_support_is_an_error(bare_run):
    out = hotbench("plot", str(bare_run), "--figure", "heatmap")
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "pages.parquet" in out.stderr, out.stderr


def test_report_into_the_run_directory(bare_run):
    out = hotbench("report", str(bare_run))
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert out.stdout.splitlines() == [str(bare_run / "report" / "report.md"), str(bare_run / "report" / "report.html")]
    md = (bare_run / "report" / "report.md").read_text()
    assert "- heatmap: no pages.parquet" in md and "- stall-cdf: no latency.parquet" in md


def test_plot_writes_figures_into_the_run_directory(runs):
    out = hotbench("plot", str(runs[0]), "--figure", "precision-recall,stall-cdf", "--format", "svg")
    assert out.returncode == 0 and out.stderr == "", out.stderr
    written = [Path(line) for line in out.stdout.splitlines()]
    assert [p.name for p in written] == ["precision-recall.svg", "stall-cdf.svg"]
    assert all(p.parent == runs[0] / "figures" and p.stat().st_size > 10_000 for p in written)


def test_plot_lists_the_figures():
    out = hotbench("plot", "--list")
    assert out.returncode == 0 and "heatmap" in out.stdout and "pages.parquet" in out.stdout
