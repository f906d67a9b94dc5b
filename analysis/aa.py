"""A/A checks of the comparison's error model, and deliberately changed copies of a run.

An A/A pair is two runs of one build, back to back: every difference between them is noise,
so 'hotbench compare' must call nothing in it changed. ``check_pairs`` compares runs two by
two (1 with 2, 3 with 4, ...) and counts the verdicts; ``changed_copy`` writes a copy of a
run with chosen timing families scaled (a slower build, injected where the truth is known),
which the comparison must report. ``tools/aa-test`` runs the whole check live; the tests run
it on recorded runs (``tests/fixtures/aa``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from analysis.compare import VERDICTS, compare, load_run

__all__ = ["check_pairs", "changed_copy", "TIMING_COLUMNS"]

# metric family -> the samples column it is read from (lockstep timing)
TIMING_COLUMNS = {"arm_ns": "arm_ns", "collect_ns": "collect_ns", "arm_cpu_ns": "arm_cpu_ns",
                  "collect_cpu_ns": "collect_cpu_ns"}


def check_pairs(run_dirs: list[Path], floors=None) -> list[dict]:
    """Compare run 1 with 2, 3 with 4, ...: per pair the run ids, the verdict counts and the
    metrics not "unchanged" (with their verdict and effect)."""
    out = []
    for first, second in zip(run_dirs[0::2], run_dirs[1::2]):
        result = compare(load_run(first), load_run(second), floors=floors)
        flagged = [{"metric": r["metric"], "verdict": r["verdict"], "worse": r["worse"], "better": r["better"],
                    "floor": r["floor"], "p": r["p"]} for r in result.rows if r["verdict"] != "unchanged"]
        out.append({"a": result.a["run_id"], "b": result.b["run_id"], "metrics": len(result.rows),
                    "counts": {v: result.count(v) for v in VERDICTS}, "flagged": flagged})
    return out


def changed_copy(run_dir: Path, out: Path, factors: dict[str, float]) -> Path:
    """A copy of *run_dir* at *out* (a new run id) whose lockstep timing families and/or
    micro-benchmark values are multiplied: ``{"collect_ns": 2.0, "collect_cpu_ns": 2.0,
    "micro": 1.5}``."""
    import pandas as pd

    from bench import results

    unknown = set(factors) - set(TIMING_COLUMNS) - {"micro"}
    if unknown:
        raise ValueError(f"cannot scale {', '.join(sorted(unknown))}")
    shutil.copytree(run_dir, out)
    samples = pd.read_parquet(out / results.SAMPLES)
    for family, factor in factors.items():
        if family in TIMING_COLUMNS:
            samples[TIMING_COLUMNS[family]] = samples[TIMING_COLUMNS[family]] * factor
    results.atomic_write_bytes(out / results.SAMPLES, samples.to_parquet(index=False))
    micro = out / "micro.json"
    if "micro" in factors and micro.is_file():
        data = json.loads(micro.read_text())
        for bench in data["benchmarks"]:
            for run in bench["runs"]:
                if "values" in run:
                    run["values"] = [v * factors["micro"] for v in run["values"]]
        micro.write_text(json.dumps(data))
    manifest = results.load_manifest(out)
    manifest["run_id"] = out.name
    results.write_manifest(out, manifest)
    return out
