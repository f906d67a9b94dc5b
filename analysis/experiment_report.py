"""An experiment's report: the question, the answer generated from the data, the evidence.

``build(spec, sources, out)`` reads one or more experiment outputs (``OUT/experiment.json``
plus ``OUT/steps/*/RUN``) — several when parts ran on different kernels, e.g. the host and a
``hotbench vm`` guest — and writes ``report.md`` / ``report.html`` / ``tables/`` and
``figures/`` into *out*, plus the full generic report of the same data in ``out/full/``.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from analysis import answers, figures, report
from analysis.data import Data, load
from analysis.report import Table
from bench import experiment
from bench.experiments import Spec

FULL_DIR = "full"


def _run_parents(sources: list[Path]) -> list[Path]:
    """Every step directory that holds at least one results run."""
    return [step for src in sources for step in sorted((Path(src) / experiment.STEPS_DIR).glob("*"))
            if step.is_dir() and any((run / "manifest.json").is_file() for run in step.iterdir())]


def _steps_table(records: list[tuple[Path, dict]]) -> Table:
    import pandas as pd

    rows, recs = [], []
    for src, record in records:
        kernel = record.get("environment", {}).get("kernel_release", "?")
        accel = record.get("environment", {}).get("accel") or "native"
        for step in record["steps"]:
            skipped = "; ".join(f"{k}: {v}" for k, v in step["skipped"].items()) or "-"
            rows.append([f"{kernel} ({accel})", step["name"], step["status"], f"{step['seconds']:.0f} s", skipped])
            recs.append({"source": str(src), "kernel": kernel, "accel": accel, **step})
    headers = ["kernel", "step", "status", "time", "skipped here (reason)"]
    return Table("steps", headers, rows, [False, False, False, True, False], pd.DataFrame(recs))


def _missing_everywhere(records: list[tuple[Path, dict]]) -> list[str]:
    """Mechanisms some step had to skip that no source ran."""
    steps = [s for _, r in records for s in r["steps"]]
    missing = {m for s in steps for m in s.get("mechanisms_missing", [])}
    ran = {m for s in steps if s["status"] == "ok" for m in _wanted(s)}
    return sorted(missing - ran)


def _wanted(step: dict) -> set[str]:
    """Mechanisms a step ran (its argv holds only the available trackers or variants)."""
    argv = step.get("argv") or []
    for flag in ("--trackers", "--variant"):
        if flag in argv:
            return {experiment.mechanism_of(step["command"], n) for n in argv[argv.index(flag) + 1].split(",")}
    return set()


def _answer(spec: Spec, data: Data | None, quick: bool, records: list[dict]) -> tuple[str, list[tuple]]:
    if data is None:
        return "Not answered: no step ran on this kernel (see 'What ran').", []
    try:
        got = answers.answer(spec.name, answers.Context(data, quick, records))
    except answers.NoData as e:
        return f"Not answered by these results: {e}.", []
    except Exception as e:  # a bug in an answer module must not throw away the runs' report
        where = traceback.extract_tb(e.__traceback__)[-1]
        return (f"Not answered: the answer module failed ({type(e).__name__}: {e}, at "
                f"{Path(where.filename).name}:{where.lineno}); the steps' results are intact.", [])
    return got.paragraph, got.evidence


def _not_measured(records: list[tuple[Path, dict]]) -> str:
    """The steps that failed, so the paragraph never reads as complete when part of it is missing."""
    steps = [s for _, r in records for s in r["steps"]]
    ran = {s["name"] for s in steps if s["status"] == "ok"}  # on another kernel, say
    failed = [f"{s['name']} ({'never finished' if s['status'] == 'running' else s['status']})" for s in steps
              if s["status"].startswith(("failed", "running")) and s["name"] not in ran]
    return f" Not measured, a step failed: {'; '.join(failed)}." if failed else ""


def build(spec: Spec, sources: list[Path], out: Path, quick: bool = False) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    records = [(Path(src), experiment.load_record(src)) for src in sources]
    parents = _run_parents(sources)
    data = load(parents) if parents else None
    paragraph, evidence = _answer(spec, data, quick, [r for _, r in records])
    paragraph += _not_measured(records)
    blocks: list[tuple] = [("h1", f"{spec.name}: {spec.title}"),
                           ("p", f"Question. {spec.question}" + (f" (asked by {spec.asked_by})" if spec.asked_by else "")),
                           ("p", f"Answer. {paragraph}")]
    if evidence:
        blocks += [("h2", "Evidence"), *evidence]
    if data is not None and spec.figures:
        # costs drawn from unprofiled runs only (an experiment may profile in a step of its own)
        paths, skipped = figures.render(data.unprofiled(), out / report.FIGURES_DIR, spec.figures, "png")
        blocks += [("figure", p) for p in paths]
        blocks += [("p", f"Figure {name} not drawn: {why}") for name, why in skipped.items()]
    blocks += [("h2", "What ran"), ("table", _steps_table(records))]
    missing = _missing_everywhere(records)
    if missing:
        hint = experiment.vm_hint(spec, missing, quick, Path(sources[0]).resolve())
        blocks += [("h2", "Not run on any kernel here"),
                   ("p", f"{', '.join(missing)}: no source of this report had them. {hint}")]
    if data is not None:
        report.build(parents, out / FULL_DIR, data)
        blocks.append(("p", f"Every table and figure of these runs: {FULL_DIR}/report.md ({FULL_DIR}/report.html)."))
    report.write(blocks, out, title=f"hotbench experiment {spec.name}")
    return out
