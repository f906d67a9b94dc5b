"""--kernel-profile by sampling: self and inclusive counts per function, [user], function sets
counted once per sample, from synthetic samples; the method the kernel allows, live."""

import os

import numpy as np
import pytest

from bench import kernel_profile
from bench.kernel import kallsyms
from bench.kernel import perf_event as pe

K = 0xffffffff81000000
SYMBOLS = kallsyms.Symbols.parse("\n".join(f"{K + 0x100 * i:x} T {name}" for i, name in enumerate(
    ["entry", "page_idle_bitmap_read", "rmap_walk", "rmap_walk_anon", "page_idle_clear_pte_refs_one",
     "folio_lock", "copy_to_user"])))


def addr(name):
    return K + 0x100 * list(SYMBOLS.names[SYMBOLS.ids]).index(name) + 8


def samples(chains, users=0, lost=0):
    """Kernel samples with these callchains (innermost first: the first entry is the IP), then
    *users* user-mode samples."""
    ips = [addr(c[0]) for c in chains] + [0x401000] * users
    flat = [addr(name) for c in chains for name in c]
    starts = np.concatenate([[0], np.cumsum([len(c) for c in chains] + [0] * users)])
    return pe.Samples(np.array(ips, np.uint64), np.array([True] * len(chains) + [False] * users),
                      np.array(flat, np.uint64), starts.astype(np.int64), lost)


WALK = ("rmap_walk", "rmap_walk_anon", "page_idle_clear_pte_refs_one")


def test_summarize_counts_self_inclusive_user_and_sets_once_per_sample():
    chains = ([["page_idle_clear_pte_refs_one", "rmap_walk_anon", "rmap_walk", "page_idle_bitmap_read", "entry"]] * 6
              + [["rmap_walk", "page_idle_bitmap_read", "entry"]] * 2
              + [["folio_lock", "page_idle_bitmap_read", "entry"]] * 3
              + [["copy_to_user", "entry"]])
    rows = kernel_profile.summarize(samples(chains, users=4, lost=2), SYMBOLS, {"rmap walk": WALK})
    by = {r["function"]: r for r in rows}
    assert all(r["phase_samples"] == 16 and r["lost"] == 2 for r in rows)
    assert by["entry"]["samples"] == 12 and by["entry"]["self_samples"] == 0
    assert by["page_idle_bitmap_read"]["samples"] == 11
    assert by["rmap_walk"]["samples"] == 8 and by["rmap_walk"]["self_samples"] == 2
    assert by["page_idle_clear_pte_refs_one"]["self_samples"] == 6
    assert by[kernel_profile.USER] == {**by[kernel_profile.USER], "samples": 4, "self_samples": 4}
    walk = by["rmap walk"]
    assert walk["kind"] == "set" and walk["samples"] == 8 and walk["self_samples"] == 8  # not 6 + 6 + 8
    assert walk["members"] == ",".join(WALK)
    assert [r["rank"] for r in rows] == list(range(len(rows)))
    assert [r["samples"] for r in rows] == sorted((r["samples"] for r in rows), reverse=True)


def test_summarize_keeps_the_top_by_self_and_by_inclusive():
    chains = [["folio_lock", "page_idle_bitmap_read", "entry"]] * 5 + [["copy_to_user", "entry"]] * 3
    names = [r["function"] for r in kernel_profile.summarize(samples(chains), SYMBOLS, {}, top=1)]
    assert names == ["entry", "folio_lock"]  # the most inclusive and the most self, nothing else


def test_summarize_of_no_samples_has_only_empty_sets():
    rows = kernel_profile.summarize(samples([]), SYMBOLS, {"rmap walk": WALK})
    assert [(r["function"], r["samples"], r["phase_samples"]) for r in rows] == [("rmap walk", 0, 0)]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: kernel samples and /proc/kallsyms addresses")
def test_profiling_uses_the_function_profiler_or_says_why_it_samples():
    with kernel_profile.Profiling(("arm",)) as profiling:
        record = profiling.describe()
        if not record["enabled"]:
            pytest.skip(f"no kernel profile here: {record['reason']}")
        with profiling.phase("arm", {"cell": 0, "interval": 0}, {"syscall": ("do_syscall_64",)}):
            for _ in range(3000):
                os.stat("/proc/self/status")
        with profiling.phase("collect", {"cell": 0, "interval": 0}):
            pass  # not asked for: no rows
    assert {r["phase"] for r in profiling.rows} == {"arm"}
    if record["method"] == "sampling":
        assert "function profiler" in record["not_used"] and record["period_ns"] == kernel_profile.PERIOD_NS
        syscall = next(r for r in profiling.rows if r["function"] == "syscall")
        assert 0 < syscall["samples"] <= syscall["phase_samples"]
    else:
        assert record["not_used"] == {}
