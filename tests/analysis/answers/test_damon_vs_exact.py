"""The damon-vs-exact answer on a tiny results directory read back by analysis.data.load."""

import json

import numpy as np
import pytest

from analysis.answers import Context, NoData
from analysis.answers import damon_vs_exact as ans
from analysis.data import load
from bench.scoring import score
from bench import results
from bench.trackers import Observation
from workloads._base import Truth

NPAGES = 1024
INTERVALS = 3
HOT = 256  # hotcold hot=0.25: pages [0, 256)


def _truth(workload: str, i: int) -> np.ndarray:
    bits = np.zeros(NPAGES, bool)
    if workload == "hotcold":
        bits[:HOT] = True
    else:  # zipf: pages 0..49 in every interval, a different cold stripe each interval
        bits[:50] = True
    bits[300 + 100 * i: 400 + 100 * i] = True
    return bits


def exact(bits):
    return bits.copy()


def half_hot(bits):
    """Misses every other page of the first 256 (a sampler that skips half the hot regions)."""
    out = bits.copy()
    out[:HOT:2] = False
    return out


def _cell(tracker, workload, report, repeat=0):
    rows, pages = [], []
    params = {"accesses": 5000, "seed": 1, **({"hot": 0.25, "p": 0.9} if workload == "hotcold" else {"s": 1.0})}
    granularity = "region" if tracker.startswith("damon") else "page"
    pack = lambda b: np.packbits(b, bitorder="little").tobytes()  # noqa: E731
    for i in range(INTERVALS):
        read = _truth(workload, i)
        truth = Truth(read=read, written=np.zeros(NPAGES, bool))
        answer = report(read)
        base = {"run_id": "run-1", "tracker": tracker, "workload_spec": workload, "backing": "anon",
                "size_bytes": NPAGES * 4096, "repeat": repeat, "npages": NPAGES}
        rows.append({**base, "mechanism": tracker, "granularity": granularity, "sees": "reads+writes",
                     "workload": workload, "workload_params": json.dumps(params), "page_size": 4096, "interval": i,
                     "arm_ns": 2_000_000, "collect_ns": 3_000_000, "workload_ns": 7_000_000, "arm_cpu_ns": 100_000,
                     "collect_cpu_ns": 400_000 if granularity == "region" else 200_000, "status": "ok",
                     **score(Observation(accessed=answer), truth, "reads+writes", NPAGES)})
        pages.append({**base, "interval": i, "truth_read": pack(read), "truth_written": pack(truth.written),
                      "reported": pack(answer), "reported_read": None, "reported_written": None})
    return rows, pages


def _ctx(tmp_path, trackers: dict, workloads=("hotcold", "zipf"), with_pages=True, repeats=1):
    run_dir = results.create_run_dir(tmp_path, "run-1")
    rows, n = [], 0
    for tracker, report in trackers.items():
        for workload in workloads:
            for repeat in range(repeats):
                cell_rows, cell_pages = _cell(tracker, workload, report, repeat)
                rows += cell_rows
                if with_pages:
                    results.write_pages(run_dir, n, cell_pages)
                n += 1
    results.write_samples(run_dir, rows)
    results.write_manifest(run_dir, {"run_id": "run-1", "mode": "lockstep",
                                     "environment": {"kernel_release": "7.3.4-synth", "accel": "tcg"}})
    return Context(load([tmp_path]), quick=True)


def test_hot_recall_restricted_to_the_hot_set(tmp_path):
    text = ans.answer(_ctx(tmp_path, {"damon-vaddr": half_hot, "rwp": exact})).paragraph
    assert "kernel 7.3.4-synth, under QEMU TCG emulation (timings are not native)" in text
    # hotcold: 128 of 256 hot pages; overall (128 + 100) / 356
    assert "hotcold (its hot set, 256 pages): damon-vaddr 0.500 vs 0.640, rwp 1.000 vs 1.000" in text
    # zipf: the 50 pages of every interval; half_hot drops 25 of them
    assert "zipf (pages touched in every interval, 50.0 pages): damon-vaddr 0.500 vs 0.833" in text
    assert "DAMON's lowest hot-page recall was 0.500" in text
    assert "Under DAMON each interval's accesses took 7.00 ms of wall time" in text
    assert "RWP's ranged 1.000–1.000" in text


def test_repeats_pool_without_inflating_the_hot_set(tmp_path):
    text = ans.answer(_ctx(tmp_path, {"damon-vaddr": half_hot, "rwp": exact}, repeats=3)).paragraph
    assert "3 intervals × 3 repeat(s)" in text
    assert "hotcold (its hot set, 256 pages): damon-vaddr 0.500 vs 0.640" in text


def test_swapping_the_trackers_swaps_the_claim(tmp_path):
    text = ans.answer(_ctx(tmp_path, {"damon-vaddr": exact, "rwp": half_hot})).paragraph
    assert "damon-vaddr 1.000 vs 1.000, rwp 0.500 vs 0.640" in text
    assert "DAMON's lowest hot-page recall was 1.000" in text
    assert "RWP's ranged 0.500–0.500" in text


def test_cost_is_quoted_per_tracker(tmp_path):
    text = ans.answer(_ctx(tmp_path, {"damon-paddr": exact, "uffd-wp": exact})).paragraph
    # 0.5 ms CPU per interval on a 4 MiB arena (1/256 GiB) = 128 ms/GiB; 5 ms wall
    assert "damon-paddr 128 ms/GiB and 5.00 ms, uffd-wp 76.8 ms/GiB and 5.00 ms" in text


@pytest.mark.parametrize("trackers", [{"rwp": exact}, {"damon-vaddr": exact, "damon-paddr": exact}])
def test_no_data_without_damon_and_exact(tmp_path, trackers):
    with pytest.raises(NoData):
        ans.answer(_ctx(tmp_path, trackers))


def test_no_data_without_page_bitmaps(tmp_path):
    with pytest.raises(NoData):
        ans.answer(_ctx(tmp_path, {"damon-vaddr": half_hot, "rwp": exact}, with_pages=False))
