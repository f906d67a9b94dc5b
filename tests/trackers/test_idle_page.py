"""idle-page: the bitmap word grouping and THP head mapping everywhere; on a kernel with
page_idle (the built 7.3 kernel in 'hotbench vm'), accuracy through the runner with MGLRU
off and on, THP by head, and a kernel left as found."""

import json
import os

import numpy as np
import pytest

from bench.kernel import mglru, page_idle
from tests.trackers._lockstep import run
from tests.trackers._sigint import open_files, sigint_run

live = pytest.mark.mechanism("idle-page")


# ------------------------------------------------------------------ pure: no kernel needed

def test_bitmap_words_group_pfns_into_sorted_unique_words():
    pfns = np.array([1000, 0, 63, 1, 64, 130, 130, 1], dtype=np.uint64)
    words, values = page_idle.bitmap_words(pfns)
    assert words.tolist() == [0, 1, 2, 15]
    assert values.tolist() == [(1 << 0) | (1 << 1) | (1 << 63), 1 << 0, 1 << 2, 1 << (1000 - 960)]
    assert words.dtype == np.uint64 and values.dtype == np.uint64
    empty_words, empty_values = page_idle.bitmap_words(np.array([], dtype=np.uint64))
    assert empty_words.size == empty_values.size == 0


def test_sorted_unique_is_np_unique():
    rng = np.random.default_rng(5)
    pfns = rng.integers(0, 1 << 40, 5000).astype(np.uint64)
    pfns = np.r_[pfns, pfns[:300], pfns[:7]]
    np.testing.assert_array_equal(page_idle.sorted_unique(pfns), np.unique(pfns))
    assert page_idle.sorted_unique(np.array([], dtype=np.uint64)).size == 0
    np.testing.assert_array_equal(page_idle.sorted_unique(np.array([3, 3, 3], dtype=np.uint64)), [3])


def test_word_runs_split_at_gaps():
    assert page_idle.word_runs(np.array([0, 1, 2, 15, 16, 40])).tolist() == [[0, 3], [3, 2], [5, 1]]
    assert page_idle.word_runs(np.array([7])).tolist() == [[0, 1]]
    assert page_idle.word_runs(np.array([], dtype=np.uint64)).shape == (0, 2)


def test_bitmap_bit_of_every_pfn_survives_grouping():
    rng = np.random.default_rng(3)
    pfns = rng.choice(1 << 20, size=5000, replace=False).astype(np.uint64)
    words, values = page_idle.bitmap_words(pfns)
    slot = np.searchsorted(words, pfns >> np.uint64(6))
    assert ((values[slot] >> (pfns & np.uint64(63))) & np.uint64(1)).all()
    assert sum(bin(int(v)).count("1") for v in values) == pfns.size  # no stray bits


def test_write_and_read_words_one_call_per_run(tmp_path, monkeypatch):
    path = tmp_path / "bitmap"
    path.write_bytes(b"\0" * 8 * 64)
    pfns = np.array([3, 70, 71, 130, 64 * 40 + 5], dtype=np.uint64)  # words 0, 1, 2, 40
    words, values = page_idle.bitmap_words(pfns)
    calls = []
    real_pwrite = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, data, off: (calls.append((off, len(data))), real_pwrite(fd, data, off))[1])
    fd = os.open(path, os.O_RDWR)
    try:
        assert page_idle.write_words(fd, words, values) == 2
        assert calls == [(0, 24), (40 * 8, 8)]
        back = page_idle.read_words(fd, words)
    finally:
        os.close(fd)
    assert back.tolist() == values.tolist()
    raw = np.frombuffer(path.read_bytes(), dtype=np.uint64)
    assert raw[1] == (1 << 6) | (1 << 7) and raw[40] == 1 << 5


def test_read_past_the_end_gives_zero_words(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(np.array([5, 6], dtype=np.uint64).tobytes())
    fd = os.open(path, os.O_RDONLY)
    try:
        assert page_idle.read_words(fd, np.array([1, 2, 3], dtype=np.uint64)).tolist() == [6, 0, 0]
        assert page_idle.read_kpageflags(fd, np.array([1, 0, 1], dtype=np.uint64)).tolist() == [6, 5, 6]
    finally:
        os.close(fd)


HEAD, TAIL, LRU, THP = (1 << page_idle.KPF_COMPOUND_HEAD, 1 << page_idle.KPF_COMPOUND_TAIL,
                        1 << page_idle.KPF_LRU, 1 << page_idle.KPF_THP)


def _fake_flags():
    flags = {}
    for pfn in range(1024, 1536):  # a PMD THP at 1024
        flags[pfn] = (HEAD if pfn == 1024 else TAIL) | LRU | THP
    for pfn in range(3000, 3004):  # an order-2 mTHP at 3000
        flags[pfn] = (HEAD if pfn == 3000 else TAIL) | LRU | THP
    flags[2001] = LRU  # a small folio at an odd PFN
    return lambda pfns: np.array([flags.get(int(p), 0) for p in pfns], dtype=np.uint64)


def test_thp_tails_map_to_their_head():
    flags_of = _fake_flags()
    pfns = np.array([1024, 1025, 1535, 1300, 2001, 3003, 3001, 3000], dtype=np.uint64)
    heads, tails = page_idle.compound_heads(pfns, flags_of(pfns), flags_of)
    assert heads.tolist() == [1024, 1024, 1024, 1024, 2001, 3000, 3000, 3000]
    assert tails == 5


def test_all_512_base_pages_of_a_thp_share_the_head_bit():
    flags_of = _fake_flags()
    pfns = np.arange(1024, 1536, dtype=np.uint64)
    heads, _ = page_idle.compound_heads(pfns, flags_of(pfns), flags_of)
    words, values = page_idle.bitmap_words(heads)
    assert words.tolist() == [16] and values.tolist() == [1]  # only PFN 1024's bit is ever written


def test_head_lookup_reads_whole_blocks_once():
    flags_of = _fake_flags()
    calls = []

    def counting(pfns):
        calls.append(np.asarray(pfns).copy())
        return flags_of(pfns)

    pfns = np.r_[np.arange(1024, 1536), np.arange(3000, 3004)].astype(np.uint64)
    page_idle.compound_heads(pfns, flags_of(pfns), counting)
    assert len(calls) == 1  # one read: the 512-PFN blocks holding tails (1024.. and 2560..)
    assert calls[0].tolist() == list(range(1024, 1536)) + list(range(2560, 3072))
    assert page_idle.word_runs(np.unique(calls[0])).shape[0] == 2


def test_tail_without_a_findable_head_maps_to_itself():
    pfns = np.array([77], dtype=np.uint64)
    heads, tails = page_idle.compound_heads(pfns, np.array([TAIL], dtype=np.uint64),
                                            lambda p: np.zeros(len(p), dtype=np.uint64))
    assert heads.tolist() == [77] and tails == 0


# ------------------------------------------------------------------ live (a kernel with page_idle)

def _mglru(state):
    """settings.applied for --mglru, or a no-op on kernels without MGLRU."""
    from contextlib import nullcontext

    from bench import settings

    if mglru.enabled() is None:
        return nullcontext({})
    return settings.applied({"mglru": state})


def _rates(df):
    tp, fp, fn = (int(df[c].sum()) for c in ("tp", "fp", "fn"))
    return tp / max(tp + fp, 1), tp / max(tp + fn, 1)


# Bounds: page_idle marks pages idle by clearing their Accessed bits through rmap without a TLB flush
# (like MGLRU and DAMON, see test_mglru.py), so a page re-touched through a translation still cached
# in the TLB reads idle: only the first interval (no user translation cached yet: the arena was
# populated by the kernel) can show full recall. A page it reports accessed was accessed, unless it
# is not on an LRU or moved (both reported accessed on purpose and counted in extra).
MIN_PRECISION = 0.95
MIN_FIRST_INTERVAL_RECALL = 0.90


@live
@pytest.mark.parametrize("pattern", ["hotcold", "zipf", "uniform"])
def test_accuracy_with_mglru_off(pattern):
    with _mglru("off"):
        df = run("idle-page", pattern, intervals=4, accesses=3000)
    precision, recall = _rates(df)
    first_recall = _rates(df.iloc[:1])[1]
    extra = [json.loads(e) for e in df["extra"]]
    print(f"\nidle-page {pattern} mglru=off: precision {precision:.4f} recall {recall:.4f} (first interval "
          f"{first_recall:.4f}) tp {df.tp.tolist()} fp {df.fp.tolist()} fn {df.fn.tolist()} "
          f"not_lru {[e['not_lru'] for e in extra]} pfn_changed {[e['pfn_changed'] for e in extra]} "
          f"runs {[e['runs'] for e in extra]} collect_ms {list((df.collect_ns / 1e6).round(2))} "
          f"arm_ms {list((df.arm_ns / 1e6).round(2))}")
    assert all(e["lru_gen_enabled"] in (None, 0) or not e["lru_gen_enabled"] & 1 for e in extra)
    assert precision >= MIN_PRECISION and first_recall >= MIN_FIRST_INTERVAL_RECALL


@live
def test_mglru_on_is_recorded_and_measured():
    if mglru.enabled() is None:
        pytest.skip("no MGLRU on this kernel: nothing to compare")
    with _mglru("on"):
        df = run("idle-page", "hotcold", intervals=4, accesses=3000)
    precision, recall = _rates(df)
    extra = [json.loads(e) for e in df["extra"]]
    print(f"\nidle-page hotcold mglru=on: precision {precision:.4f} recall {recall:.4f} "
          f"(first interval {_rates(df.iloc[:1])[1]:.4f}) tp {df.tp.tolist()} fn {df.fn.tolist()}")
    assert all(e["lru_gen_enabled"] & 1 for e in extra)
    assert precision >= MIN_PRECISION  # MGLRU can only add false idles (misses), never false accesses


@live
def test_thp_pages_reported_by_their_head():
    from bench.arena import backing_unavailable

    if backing_unavailable("thp"):
        pytest.skip(backing_unavailable("thp"))
    with _mglru("off"):
        df = run("idle-page", "hotcold", "thp", size=8 << 20, intervals=2, accesses=500)
    extra = [json.loads(e) for e in df["extra"]]
    print(f"\nidle-page thp: thp_tails {[e['thp_tails'] for e in extra]} words {[e['words'] for e in extra]} "
          f"tp {df.tp.sum()} fp {df.fp.sum()} fn {df.fn.sum()}")
    assert all(e["thp_tails"] > 0 for e in extra), "the arena was not THP-backed"
    first = df.iloc[0]
    assert first.fn <= 0.1 * first.tp  # later intervals: TLB-cached huge translations go unseen
    assert (df["reported"] % 512 == 0).all(), "a THP is reported whole or not at all"


def _open_fds() -> set[str]:
    return {os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")}


@live
def test_stop_leaves_nothing_open_after_normal_stop_and_exception(monkeypatch):
    from bench.arena import Arena
    from bench.trackers.idle_page import IdlePageTracker
    from tests.trackers._leftovers import failing_workloads

    lru_gen = mglru.enabled()
    before = _open_fds()
    with Arena("4M", "anon") as a:
        t = IdlePageTracker()
        t.start(a)
        t.arm()
        a.view[::4096] = 1
        obs = t.collect()
        assert obs.accessed.sum() >= a.npages * 0.9
        t.stop()
        t.stop()
    assert _open_fds() == before
    failing_workloads(monkeypatch, at=1)
    from bench.runner import Cell, run_cell

    with pytest.raises(RuntimeError, match="workload failed"):
        run_cell(Cell("idle-page", "uniform", "anon", 4 << 20, 3, 0, 1, accesses=500))
    assert _open_fds() == before and mglru.enabled() == lru_gen


@live
def test_sigint_of_a_run_exits_130_and_closes_everything(tmp_path):
    lru_gen = mglru.enabled()
    status, err, seen = sigint_run(tmp_path, "idle-page",
                                   lambda pid: page_idle.PAGE_IDLE_BITMAP in open_files(pid))
    assert seen, "the run never opened the bitmap"
    assert status == 130 and "Traceback" not in err, err
    assert mglru.enabled() == lru_gen
