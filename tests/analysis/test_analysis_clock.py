"""Instruction-clock runs in tables, reports and figures: labelled in instructions, never mixed with ns."""

import json

import pytest

import hb_synth
from analysis import data as data_mod
from analysis import figures, report
from bench import clock


def _as_icount(run_dir, shift=0):
    """A synthetic tcg run turned into an icount run (its manifest says so; its rows do not, like
    runs written before rows carried the clock)."""
    path = run_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["environment"].update(clock="instructions", icount_shift=shift, vcpus=1)
    path.write_text(json.dumps(manifest))
    return run_dir


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    native = hb_synth.make_run(root, *hb_synth.KERNELS[0])
    icount = _as_icount(hb_synth.make_run(root, *hb_synth.KERNELS[1]))
    return native, icount


def test_labels_name_the_clock_and_split_by_it(mixed):
    d = data_mod.load(list(mixed))
    assert d.labels == ["6.18.44-synth", "7.3.0-synth (tcg, icount)"]
    assert d.clock_of(d.labels[1]) == clock.Clock("instructions", 0) and not d.clock_of(d.labels[0]).instructions
    with pytest.raises(clock.MixedClocksError):
        d.clock()
    parts = d.by_clock()
    assert [(c.kind, p.labels) for c, p in parts] == [("wall", ["6.18.44-synth"]),
                                                       ("instructions", ["7.3.0-synth (tcg, icount)"])]
    assert set(parts[1][1].samples["clock"]) == {"instructions"} and set(parts[0][1].samples["clock"]) == {"wall"}


def test_a_shifted_clock_is_converted_to_instructions(tmp_path):
    plain = data_mod.load([hb_synth.make_run(tmp_path / "a", *hb_synth.KERNELS[1])])
    shifted = data_mod.load([_as_icount(hb_synth.make_run(tmp_path / "b", *hb_synth.KERNELS[1]), shift=2)])
    assert (shifted.samples["collect_ns"] * 4).equals(plain.samples["collect_ns"].astype("float64"))
    assert shifted.micro["value"].mul(4).round(15).equals(plain.micro["value"].round(15))
    assert (shifted.concurrent["throughput_aps"] / 4).round(6).equals(plain.concurrent["throughput_aps"].round(6))


def test_report_separates_the_clocks_and_labels_instructions(mixed):
    d = data_mod.load(list(mixed))
    blocks = report._sections(d, [], {})
    headings = [b[1] for b in blocks if b[0] == "h2"]
    assert "Cost (lockstep runs) — in wall-clock time" in headings
    assert "Cost (lockstep runs) — in guest instructions (icount)" in headings
    tables = {b[1].name: b[1] for b in blocks if b[0] == "table"}
    assert "collect Minstr/GiB" in tables["cost-icount"].headers and "collect ms/GiB" in tables["cost"].headers
    assert not any("ms" in h or "µs" in h for h in tables["overhead-icount"].headers)
    assert "p99 stall kinstr" in tables["overhead-icount"].headers
    # costs are never tested across clocks; accuracy is
    comparison = report._comparison(d)[0].frame
    costs = set(report.COST) | set(report.OVERHEAD)
    assert not len(comparison[comparison["metric"].isin(costs)])
    assert len(comparison[comparison["metric"].isin(set(report.ACCURACY))])
    env = next(b[1] for b in blocks if b[0] == "pre")
    assert [line.split(None, 1)[1] for line in env.splitlines() if line.startswith("clock ")] == [
        "guest instructions (QEMU icount, shift 0), 1 vCPU"]


def test_cost_figures_are_drawn_once_per_clock(mixed, tmp_path):
    d = data_mod.load(list(mixed))
    written, skipped = figures.render(d, tmp_path, ["cost-vs-size", "precision-recall"])
    assert sorted(p.name for p in written) == ["cost-vs-size-icount.png", "cost-vs-size.png", "precision-recall.png"]


def test_the_run_summary_speaks_in_instructions():
    import pandas as pd

    from analysis import tables

    row = {"tracker": "rwp", "workload": "zipf", "backing": "anon", "sees": "reads+writes", "status": "ok",
           "size_bytes": 1 << 30, "tp": 1, "fp": 0, "fn": 0, "tn": 1, "tp_any": 1, "truth_any": 1, "wss_true": 1,
           "wss_est": 1, "arm_ns": 2_000_000, "collect_ns": 4_000_000, "clock": "instructions", "icount_shift": 1}
    text = tables.summary_text(pd.DataFrame([row]))
    assert "collect Minstr/GiB" in text and "ms" not in text.split("\n")[0]
    assert text.split("\n")[2].split()[-2:] == ["2.00", "1.00"]  # ns >> 1
