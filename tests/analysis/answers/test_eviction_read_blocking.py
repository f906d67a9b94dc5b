"""The eviction-read-blocking answer on synthetic 'hotbench evict' rows: its claims follow the numbers."""

import re

import pandas as pd
import pytest

from analysis.answers import Context, NoData
from analysis.answers import eviction_read_blocking as ans
from analysis.data import Data, RunInfo

LABEL = "7.3.4-synth (tcg)"

# variant: (evicted/s, window ms, ioctls, cold runs, refaults, p99 us, max ms, lost, seen, read-touched)
BASE = {
    "rwp-sync": (90_000, 20, 4, 1000, 300, 900, 30, 0, 80, 40),
    "uffd-wp": (40_000, 40, 2000, 1000, 600, 300, 90, 0, 5, 50),
    "shmem-minor": (80_000, 22, 1, 1000, 350, 2000, 35, 0, 70, 35),
    "racy": (70_000, 25, 0, 1000, 500, 200, 20, 150, 0, 60),
    "none": (0, 0.5, 0, 0, 0, 100, 15, 0, 0, 0),
}


def _rows(numbers: dict, rescue: bool = False, rounds: int = 2) -> list[dict]:
    rows = []
    for variant, (eps, win, ioctls, runs, refaults, p99, mx, lost, seen, reads) in numbers.items():
        for r in range(rounds):
            evicted = 0 if variant == "none" else 2000
            rows.append({
                "variant": variant, "status": "ok", "rescue": rescue, "repeat": 0, "round": r, "run_id": "run-1",
                "size_bytes": 32 << 20, "threads": 2, "rounds": rounds, "interval_s": 0.1,
                "evicted_per_s": float(eps), "window_ns": int(win * 1e6), "uffd_ioctls": ioctls, "runs": runs,
                "bytes_written": evicted * 4096, "evicted_pages": evicted, "refaults": refaults // rounds,
                "rescued_pages": seen if rescue else 0, "tracking_faults": 0,
                "window_touched_pages": reads * 2, "window_read_pages": reads, "window_seen_pages": seen,
                "run_lat_p99_ns": p99 * 1e3, "run_lat_max_ns": int(mx * 1e6), "win_lat_max_ns": int(mx * 1e6),
                "lost_pages": lost, "torn_pages": 0, "misplaced_pages": 0, "zeroed_pages": 0,
                "lost_writes": lost * 2,
            })
    return rows


def _ctx(rows: list[dict], label: str = LABEL, accel: str = "tcg") -> Context:
    env = {"kernel_release": label.split(" ")[0], "accel": accel}
    frame = pd.DataFrame(rows).assign(label=label)
    data = Data(runs=[RunInfo("run-1", label, {"environment": env})], labels=[label],
                samples=pd.DataFrame(columns=["label", "tracker"]), concurrent=pd.DataFrame(), eviction=frame)
    return Context(data, quick=True)


def _stall_sentence(text: str) -> str:
    return re.search(r"Stall tail, [^;]*", text).group(0)


def test_answer_quotes_each_variant_and_the_emulation():
    text = ans.answer(_ctx(_rows(BASE))).paragraph
    assert "under QEMU TCG emulation (timings are not native)" in text
    for variant in BASE:
        assert variant in text
    assert "150 lost pages and 300 lost writes under racy" in text
    assert "kept every page intact" in text
    # 2000 ioctls (2 per cold run) against rwp-sync's 4
    assert "uffd-wp 2,000 ioctls per round (2.00 per cold run) against 4.00 for rwp-sync: 500×" in text
    assert "p99 0.900 vs 0.300 ms (3.00×)" in _stall_sentence(text)


def test_swapping_the_stall_numbers_changes_the_claim():
    swapped = dict(BASE)
    swapped["rwp-sync"], swapped["uffd-wp"] = (
        BASE["rwp-sync"][:5] + BASE["uffd-wp"][5:7] + BASE["rwp-sync"][7:],
        BASE["uffd-wp"][:5] + BASE["rwp-sync"][5:7] + BASE["uffd-wp"][7:])
    text = ans.answer(_ctx(_rows(swapped))).paragraph
    assert "p99 0.300 vs 0.900 ms (0.333×)" in _stall_sentence(text)


def test_data_loss_in_a_safe_variant_is_reported():
    lossy = dict(BASE, **{"uffd-wp": BASE["uffd-wp"][:7] + (12,) + BASE["uffd-wp"][8:]})
    text = ans.answer(_ctx(_rows(lossy))).paragraph
    assert "Data was lost or damaged under uffd-wp (12 lost" in text
    assert "kept every page intact" not in text


def test_a_checker_that_caught_nothing_is_not_credited():
    clean = dict(BASE, racy=BASE["racy"][:7] + (0,) + BASE["racy"][8:])
    text = ans.answer(_ctx(_rows(clean))).paragraph
    assert "racy lost nothing in these runs" in text
    assert "it detects a missing interception" not in text


def test_rescue_step_and_shmem_minor_fallback():
    no_rwp = {k: v for k, v in BASE.items() if k != "rwp-sync"}
    rows = _rows(no_rwp) + _rows({k: no_rwp[k] for k in ("uffd-wp", "shmem-minor")}, rescue=True)
    text = ans.answer(_ctx(rows, "6.18-synth", "native")).paragraph
    assert "kernel 6.18-synth, native" in text
    assert "against 1.00 for shmem-minor" in text
    assert "--rescue), shmem-minor kept 70.0 pages per round" in text


@pytest.mark.parametrize("variants", [("racy", "none"), ("uffd-wp",), ("rwp-sync", "shmem-minor")])
def test_no_comparison_without_uffd_wp_and_a_read_blocker(variants):
    with pytest.raises(NoData):
        ans.answer(_ctx(_rows({k: BASE[k] for k in variants})))


def test_no_eviction_rows():
    ctx = _ctx(_rows(BASE))
    ctx.data.eviction = None
    with pytest.raises(NoData):
        ans.answer(ctx)
