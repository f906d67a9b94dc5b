"""hotbench harness: every tracker phase has a raw primitive or a stated reason, and the three
benchmarks produce ratios on real memory and real kernel interfaces (values never judged)."""

import pytest

from bench import harness, trackers


def test_every_tracker_phase_has_a_primitive_or_a_reason():
    for name, cls in trackers.registry().items():
        for phase in harness.PHASES:
            raw = cls.raw_primitives.get(phase)
            assert isinstance(raw, trackers.RawPrimitive) or (isinstance(raw, str) and raw), (name, phase)
    assert all(c.serves_faults for c in trackers.registry().values() if c.fault_kind)


def test_loop_speed_rows():
    rows = harness.loop_speed(4 << 20, ["uniform", "zipf"], 20_000, 2)
    assert [r["pattern"] for r in rows] == ["uniform", "zipf"]
    assert all(r["ratio"] > 0 and len(r["_ratios"]) == 2 for r in rows)


@pytest.mark.mechanism("uffd-wp")
def test_phase_cost_of_uffd_wp_and_the_nightly_metrics():
    rows, skipped = harness.phase_cost(8 << 20, 0.01, 2, only=["uffd-wp"])
    assert [(r["tracker"], r["phase"]) for r in rows] == [("uffd-wp", "collect")]
    assert rows[0]["ratio"] > 0 and skipped == {"uffd-wp arm": trackers.get("uffd-wp").raw_primitives["arm"]}
    metrics = harness.nightly_metrics({"size": "4M", "accesses": 10_000, "patterns": ["uniform"], "collect_size": "8M",
                                       "repeats": 2, "faults": False}, only=["uffd-wp"])
    assert {m["metric"] for m in metrics} == {"harness:loop/uniform", "harness:collect/uffd-wp"}
    assert len(metrics) == 4 and all(m["family"] == harness.FAMILY for m in metrics)


@pytest.mark.mechanism("uffd-minor")
def test_fault_cost_per_placement():
    rows, splits, _ = harness.fault_cost(1 << 20, 2_000, 2, breakdown=False, only=["uffd-minor"])
    assert {r["placement"] for r in rows} >= {"same-cpu", "unpinned"} and not splits
    assert all(r["tracker"] == "uffd-minor" and r["ratio"] > 0 for r in rows)
