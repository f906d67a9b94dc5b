"""hotbench experiment: specs, the step runner, the report that opens with the answer."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import experiments
from bench.errors import HotbenchError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ["idle-vs-rwp", "mglru-vs-idle", "eviction-read-blocking", "damon-vs-exact", "tlb-missed-accesses",
           "shmem-faultaround", "thp-granularity", "numa-balancing-rwp", "scaling", "sweep-vs-micro"]


def hotbench(*args, cwd=ROOT, timeout=900):
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def test_every_shipped_experiment_loads_and_has_an_answer_module():
    assert set(SHIPPED) <= set(experiments.names())
    for name in experiments.names():
        spec = experiments.load(name)
        assert spec.question and spec.title and spec.steps, name
        for step in spec.steps:
            assert step.options(quick=True) and set(step.quick) <= set(step.args) | {"fault_around"}, (name, step)
        assert hasattr(importlib.import_module(f"analysis.answers.{name.replace('-', '_')}"), "answer"), name


def test_list_shows_one_line_each():
    out = hotbench("experiment", "--list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[0] for line in lines] == experiments.names()
    assert all(len(line.split(None, 1)[1]) > 20 for line in lines)


@pytest.mark.parametrize("text, message", [
    ('title = "t"\nquestion = "q"\n', "needs \\[\\[steps\\]\\]"),
    ('title = "t"\nquestion = "q"\nanswer = 1\n[[steps]]\nname = "a"\ncommand = "run"\n', "unknown key\\(s\\) answer"),
    ('title = "t"\nquestion = "q"\n[[steps]]\nname = "a"\ncommand = "plot"\n', "command must be one of"),
    ('title = "t"\nquestion = "q"\n[[steps]]\nname = "a"\ncommand = "run"\nargz = {}\n', "unknown key\\(s\\) argz"),
])
def test_spec_typos_are_refused(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(HotbenchError, match=message):
        experiments.load(str(path))


def test_quick_replaces_and_false_drops():
    step = experiments.Step("s", "run", {"size": "1G", "pages": True, "repeats": 3}, {"size": "16M", "pages": False})
    assert step.options(quick=False) == {"size": "1G", "pages": True, "repeats": 3}
    assert step.options(quick=True) == {"size": "16M", "repeats": 3}


def test_unknown_experiment_is_one_line(tmp_path):
    out = hotbench("experiment", "nosuch", "--out", str(tmp_path / "o"))
    assert out.returncode == 1 and out.stderr.startswith("error: unknown experiment 'nosuch'")
    assert out.stderr.count("\n") == 1 and not (tmp_path / "o").exists()


def test_a_kernel_without_the_mechanisms_gets_the_vm_command(tmp_path):
    """Every tracker of the spec is absent: exit 2, the report says so and how to run it elsewhere."""
    spec = tmp_path / "absent.toml"
    spec.write_text('title = "t"\nquestion = "q?"\n[[steps]]\nname = "a"\ncommand = "run"\n'
                    'args = { trackers = "rwp-rfc", workloads = "uniform", size = "8M", intervals = 2 }\n')
    out = hotbench("experiment", str(spec), "--out", str(tmp_path / "o"))
    assert out.returncode == 2, out.stdout + out.stderr
    report = (tmp_path / "o" / "report.md").read_text()
    assert "Answer. Not answered: no step ran on this kernel" in report
    assert "## Not run on any kernel here" in report and "rwp-rfc" in report
    record = json.loads((tmp_path / "o" / "experiment.json").read_text())
    assert record["steps"][0]["status"].startswith("skipped") and "rwp-rfc" in record["steps"][0]["skipped"]


@pytest.mark.root
@pytest.mark.mechanism("uffd-wp")
def test_a_real_experiment_runs_its_steps_and_reports(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text('title = "t"\nquestion = "Does uffd-wp see the writes?"\nfigures = ["precision-recall"]\n'
                    '[[steps]]\nname = "lock"\ncommand = "run"\n'
                    'args = { trackers = "uffd-wp,rwp-rfc", workloads = "uniform", size = "32M", intervals = 5 }\n'
                    'quick = { size = "8M", intervals = 2 }\n')
    out = hotbench("experiment", str(spec), "--quick", "--out", str(tmp_path / "o"))
    assert out.returncode == 0, out.stdout + out.stderr
    o = tmp_path / "o"
    record = json.loads((o / "experiment.json").read_text())
    step = record["steps"][0]
    assert record["quick"] and step["status"] == "ok" and "--trackers" in step["argv"]
    assert step["argv"][step["argv"].index("--trackers") + 1] == "uffd-wp"  # rwp-rfc dropped, with its reason
    assert step["argv"][step["argv"].index("--size") + 1] == "8M" and "rwp-rfc" in step["skipped"]
    report = (o / "report.md").read_text()
    assert report.startswith("# tiny: t\n") and "Question. Does uffd-wp see the writes?" in report
    assert "no answer module analysis/answers/tiny.py" in report
    assert (o / "full" / "report.md").is_file() and (o / "report.html").is_file()
    again = hotbench("experiment", str(spec), "--from", str(o), "--out", str(tmp_path / "again"))
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / "report.md").read_text().split("## What ran")[0] == report.split("## What ran")[0]


def test_an_out_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    out = hotbench("experiment", "scaling", "--quick", "--out", str(tmp_path / "file" / "o"))
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith(f"error: cannot create {tmp_path}/file/o: Not a directory; choose another --out")
    assert not (tmp_path / "file").read_text()


def test_out_that_has_results_is_never_overwritten(tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "x").write_text("keep")
    out = hotbench("experiment", "scaling", "--quick", "--out", str(tmp_path / "o"))
    assert out.returncode == 1 and "is not empty" in out.stderr and out.stderr.count("\n") == 1


def test_steps_that_failed_or_never_finished_are_named_unless_they_ran_elsewhere():
    from analysis.experiment_report import _not_measured

    host = {"steps": [{"name": "a", "status": "failed: exit 1 (error: lockdown)"}, {"name": "b", "status": "ok"}]}
    guest = {"steps": [{"name": "a", "status": "ok"}, {"name": "b", "status": "running"}]}
    assert _not_measured([(Path("h"), host), (Path("g"), guest)]) == ""
    assert _not_measured([(Path("g"), guest)]) == " Not measured, a step failed: b (never finished)."
    assert "a (failed: exit 1 (error: lockdown))" in _not_measured([(Path("h"), host)])
