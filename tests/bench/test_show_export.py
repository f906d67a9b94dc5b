"""``hotbench show``, ``hotbench export --csv`` and ``<out>/latest`` on synthetic results (no
kernel needed): what a run holds in one screen, its tables as CSV, the newest run found."""

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))
import hb_synth  # noqa: E402  (the synthetic results tree the analysis tests use)

from bench import results  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def hotbench(*args):
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=180)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return hb_synth.make_run(tmp_path_factory.mktemp("show"), *hb_synth.KERNELS[0])


def test_show_says_what_a_run_holds(run):
    out = hotbench("show", str(run))
    assert out.returncode == 0 and out.stderr == "", out.stderr
    lines = out.stdout.splitlines()
    fields = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in lines if not line.startswith(" ")}
    assert fields["run"] == str(run) and fields["command"] == "hotbench run --out /somewhere/else"
    assert fields["status"] == "complete" and fields["kernel"] == "6.18.44-synth"
    assert fields["clock"] == "wall-clock time" and fields["hotbench"].startswith("0.1.0 (000000000000)")
    assert "Synthetic CPU, 2 CPUs, 8 GiB, THP madvise, accel native" in fields["machine"]
    assert fields["skipped"] == "rwp: UFFDIO_API lacks UFFD_FEATURE_RWP (bit 17)"
    assert any(line.strip() == "idle-page: no /sys/kernel/mm/page_idle/bitmap: CONFIG_IDLE_PAGE_TRACKING"
               for line in lines)
    for name in ("manifest.json", "samples.parquet", "latency.parquet", "pages.parquet"):
        assert any(line.strip().startswith(f"{run / name}  ") for line in lines), name
    assert fields["next"].startswith(f"hotbench report {run}")


def test_show_json_and_the_cells(run, tmp_path):
    manifest = results.load_manifest(run)
    manifest["cells"] = [{"tracker": t, "workload": "uniform", "backing": "anon", "size_bytes": s, "repeat": r,
                          "intervals": 4, "interfere": "none"} for t in ("uffd-wp", "mprotect")
                         for s in (4 << 20, 16 << 20) for r in range(3)]
    copy = tmp_path / run.name
    copy.mkdir()
    results.write_manifest(copy, manifest)
    data = json.loads(hotbench("show", str(copy), "--json").stdout)
    assert data["cells"] == ["12 cell(s), lockstep mode", "  trackers: uffd-wp, mprotect", "  workloads: uniform",
                             "  backing: anon", "  sizes: 4M, 16M", "  repeats: 3", "  intervals: 4"]
    assert list(data["files"]) == ["manifest.json"]


def test_latest_points_at_the_newest_run_and_is_not_a_run(tmp_path):
    first = results.create_run_dir(tmp_path, "20261201T000000Z-a-1")
    second = results.create_run_dir(tmp_path, "20261202T000000Z-a-2")
    link = tmp_path / results.LATEST
    assert link.is_symlink() and link.resolve() == second.resolve() and not Path(link.readlink()).is_absolute()
    for run_dir in (first, second):
        results.write_manifest(run_dir, {"run_id": run_dir.name, "status": "complete"})
    assert results.run_dirs(tmp_path) == [first, second]  # the link is not a third run
    from analysis.data import find_run_dirs

    assert find_run_dirs([tmp_path]) == [first, second]
    out = hotbench("show", str(tmp_path))
    assert out.returncode == 0 and out.stdout.startswith(f"run:      {second.resolve()}\n"), out.stdout
    out = hotbench("show", str(link))
    assert out.returncode == 0 and out.stdout.startswith(f"run:      {second.resolve()}\n"), out.stdout
    mine = tmp_path / "mine"
    mine.mkdir()
    (tmp_path / "latest").unlink()
    (tmp_path / "latest").mkdir()  # someone's own directory called latest is never replaced
    results.create_run_dir(tmp_path, "20261203T000000Z-a-3")
    assert (tmp_path / "latest").is_dir() and not (tmp_path / "latest").is_symlink()


def test_export_csv_to_stdout_and_to_files(run, tmp_path):
    out = hotbench("export", str(run), "--csv")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert rows and {"tracker", "interval", "tp", "precision", "recall", "collect_ms_per_gib"} <= set(rows[0])
    out = hotbench("export", str(run), "--csv", "-o", str(tmp_path / "csv"))
    assert out.returncode == 0, out.stderr
    written = {p.name for p in (tmp_path / "csv").iterdir()}
    assert written == {"samples.csv", "summary.csv", "latency.csv", "micro.csv"}
    summary = list(csv.DictReader((tmp_path / "csv" / "summary.csv").open()))
    assert {r["size_bytes"] for r in summary} == {str(s) for s in hb_synth.SIZES}  # sizes are rows, not averaged
    micro = list(csv.DictReader((tmp_path / "csv" / "micro.csv").open()))
    assert micro and set(micro[0]) == {"benchmark", "value"}
    assert out.stdout.splitlines()[0].startswith(f"{tmp_path / 'csv'}/")


@pytest.mark.parametrize("args,message", [
    (["show", "/nonexistent"], "/nonexistent is not a results directory, nor a directory of them"),
    (["export", "/nonexistent", "--csv"], "/nonexistent is not a results directory"),
])
def test_bad_input_is_one_line(args, message):
    out = hotbench(*args)
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and message in out.stderr, out.stderr
