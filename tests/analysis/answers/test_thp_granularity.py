"""The thp-granularity answer on a tiny results directory read back by analysis.data.load."""

import json

import numpy as np
import pytest

from analysis.answers import Context, NoData
from analysis.answers import thp_granularity as ans
from analysis.data import load
from bench.scoring import score
from bench import results
from bench.trackers import Observation
from workloads._base import Truth

NPAGES = 4096          # 16 MiB: eight 2 MiB regions
TOUCHED = [3, 700, 701, 1500, 3000]  # five pages in four huge regions: 4 x 512 / 5 = 410x
INTERVALS = 2


def _huge(bits: np.ndarray) -> np.ndarray:
    return np.repeat(bits.reshape(-1, 512).any(axis=1), 512)


def _cell(tracker, granularity, backing, report, thp_huge=1.0):
    """Rows and page bitmaps of one cell; *report* maps the truth to what the tracker answers."""
    rows, pages = [], []
    for i in range(INTERVALS):
        read = np.zeros(NPAGES, bool)
        read[TOUCHED] = True
        truth = Truth(read=read, written=np.zeros(NPAGES, bool))
        answer = report(read, backing)
        obs = Observation(wss_pages=int(answer.sum())) if granularity == "aggregate" else Observation(accessed=answer)
        base = {"run_id": "run-1", "tracker": tracker, "workload_spec": "uniform", "backing": backing,
                "size_bytes": NPAGES * 4096, "repeat": 0, "npages": NPAGES}
        huge = int(NPAGES * 4096 * thp_huge) if backing == "thp" else 0
        rows.append({**base, "huge_bytes": huge, "mechanism": tracker, "granularity": granularity, "sees": "reads+writes",
                     "workload": "uniform", "workload_params": json.dumps({"accesses": 8, "seed": 1}),
                     "page_size": 4096, "interval": i, "arm_ns": 1000, "collect_ns": 1000, "arm_cpu_ns": 1000,
                     "collect_cpu_ns": 1000, "status": "ok", **score(obs, truth, "reads+writes", NPAGES)})
        pack = lambda b: np.packbits(b, bitorder="little").tobytes()  # noqa: E731
        pages.append({**base, "interval": i, "truth_read": pack(read), "truth_written": pack(truth.written),
                      "reported": None if granularity == "aggregate" else pack(answer),
                      "reported_read": None, "reported_written": None})
    return rows, pages


def exact(bits, backing):
    return bits.copy()


def whole_on_thp(bits, backing):
    return _huge(bits) if backing == "thp" else bits.copy()


def _data(tmp_path, trackers: dict, backings=("anon", "thp"), accel="native", thp_huge=1.0):
    run_dir = results.create_run_dir(tmp_path, "run-1")
    rows = []
    for n, (tracker, (granularity, report)) in enumerate(trackers.items()):
        for m, backing in enumerate(backings):
            cell_rows, cell_pages = _cell(tracker, granularity, backing, report, thp_huge)
            rows += cell_rows
            results.write_pages(run_dir, n * 10 + m, cell_pages)
    results.write_samples(run_dir, rows)
    results.write_manifest(run_dir, {"run_id": "run-1", "mode": "lockstep",
                                     "environment": {"kernel_release": "7.3.4-synth", "accel": accel}})
    return Context(load([tmp_path]), quick=True)


def test_whole_huge_page_reporting_shows_in_the_numbers(tmp_path):
    ctx = _data(tmp_path, {"exact-t": ("page", exact), "huge-t": ("page", whole_on_thp)})
    text = ans.answer(ctx).paragraph
    assert "kernel 7.3.4-synth, native" in text and "anon → THP, 100 % of it in 2 MiB pages)" in text
    # precision 5 / 2048
    assert ("exact-t reported 1.00× the touched pages on 4 KiB pages and 1.00× on THP (whole huge pages: 410×)"
            in text)
    assert "huge-t reported 1.00× the touched pages on 4 KiB pages and 410× on THP" in text
    assert "precision 1.000 → 0.002" in text
    assert "matched whole-huge-page reporting for huge-t and stayed at the 4 KiB ratio for exact-t." in text


def test_swapping_the_trackers_swaps_the_claim(tmp_path):
    ctx = _data(tmp_path, {"exact-t": ("page", whole_on_thp), "huge-t": ("page", exact)})
    text = ans.answer(ctx).paragraph
    assert "exact-t reported 1.00× the touched pages on 4 KiB pages and 410× on THP" in text
    assert "huge-t reported 1.00× the touched pages on 4 KiB pages and 1.00× on THP" in text
    assert "matched whole-huge-page reporting for exact-t and stayed at the 4 KiB ratio for huge-t." in text


def test_aggregate_tracker_gets_a_ratio_but_no_precision(tmp_path):
    ctx = _data(tmp_path, {"agg-t": ("aggregate", whole_on_thp)}, accel="tcg")
    text = ans.answer(ctx).paragraph
    assert "under QEMU TCG emulation" in text
    assert "agg-t reported 1.00× the touched pages on 4 KiB pages and 410× on THP (whole huge pages: 410×)." in text
    assert "precision" not in text


def test_no_data_without_both_backings(tmp_path):
    ctx = _data(tmp_path, {"exact-t": ("page", exact)}, backings=("anon",))
    with pytest.raises(NoData):
        ans.answer(ctx)


def test_the_share_of_the_thp_arena_in_huge_pages_is_stated(tmp_path):
    """A fragmented machine gives a THP arena 4 KiB pages: the answer says how much was huge."""
    ctx = _data(tmp_path, {"exact-t": ("page", exact)}, thp_huge=0.5)
    assert "anon → THP, 50 % of it in 2 MiB pages)" in ans.answer(ctx).paragraph
