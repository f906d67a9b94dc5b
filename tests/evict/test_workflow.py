"""The eviction workflow (bench/evict/) and its integrity checker (workloads/integrity.py).

Pure: the checker flags each kind of hand-made corruption and passes a page set hammered by
concurrent writers; the rwp-sync ioctl sequence against the documented 7.3 workflow (fake
kernel); unavailable variants are skipped with the probe's reason. Live (root): every
variant available here, on a small arena under concurrent writes, several times — the
safe ones lose nothing, the racy one is caught losing data, and every run records vCPU
stall times. rwp-sync needs a 7.3 kernel: ``hotbench vm --kernel <7.3> -- env
HOTBENCH_REQUIRE=rwp python3 -m pytest -q tests/evict/test_workflow.py -k rwp``.
"""

import os
import subprocess
import sys
import time
import types
from dataclasses import replace

import numpy as np
import pytest

from bench import evict
from bench.evict._core import runs_of
from bench.evict.variants import RwpSync
from bench.arena import Arena
from bench.kernel import pagemap, uffd
from tests.trackers._fake_ioctl import FakeKernel
from workloads import integrity as I

REPEATS = 3
# Small arena, writers hammering: short observation windows leave many cold pages that are
# written again within a cycle, and a 20 ms hold between write-out and drop gives the racy
# variant a window it cannot survive (the safe variants block or redirect those writes).
HAMMER = evict.EvictParams(size="16M", threads=2, rounds=3, interval=0.05, hold=0.02, write_ratio=0.7)
# Inside hotbench vm (TCG emulation, ~15x slower): fewer pages, longer windows.
# The guest runs the loop at a similar rate, so cold pages must be colder to stay untouched.
IN_VM = evict.EvictParams(size="8M", threads=2, rounds=3, interval=0.2, hold=0.05, write_ratio=0.7, hot_weight=0.999)


# ---- pure: the checker

def _pages(n=16, threads=1):
    mem = np.zeros(n * I.PAGE_WORDS, np.uint64)
    w = I.IntegrityWorkload(n, threads=threads, seed=3)
    w.warmup()
    w.init(mem)
    return mem, w


def _page(mem, p):
    return mem[p * I.PAGE_WORDS:(p + 1) * I.PAGE_WORDS]


def test_checker_passes_intact_pages_and_counts_writes():
    mem, w = _pages()
    state = 7
    for k in range(200):
        state = I.write_page(mem, k % 16, I.WEIGHTS, 8, state)
        w.record[k % 16] += 1
    v = w.verify(mem)
    assert v.clean and v.bad_pages == 0 and v.lost_writes == 0
    assert (mem[I.SEQ::I.PAGE_WORDS] == w.record).all()


def test_checker_flags_each_hand_made_corruption():
    mem, w = _pages()
    for p in range(16):
        I.write_page(mem, p, I.WEIGHTS, 8, 100 + p)
        w.record[p] += 1
    # lost write: the page goes back to its content before the last two writes
    before = _page(mem, 1).copy()
    for s in (5, 6):
        I.write_page(mem, 1, I.WEIGHTS, 8, s)
        w.record[1] += 1
    _page(mem, 1)[:] = before
    # torn: one payload word changes without its checksum (a copy taken mid-write)
    _page(mem, 2)[300] ^= 1 << 17
    # a torn header: sequence number bumped, checksum not
    _page(mem, 3)[I.SEQ] += 1
    # wrong page: page 5's content in page 4's place (both intact otherwise)
    _page(mem, 4)[:] = _page(mem, 5)
    # zeroed: the page's content is gone (a hole read back)
    _page(mem, 6)[:] = 0
    # from the future: record behind the page
    w.record[7] -= 1
    v = w.verify(mem)
    names = [I.STATUS_NAMES[s] for s in v.status]
    assert names[:8] == ["ok", "lost", "torn", "torn", "misplaced", "ok", "zeroed", "ahead"]
    assert set(names[8:]) == {"ok"}
    assert v.lost_writes == 2 and not v.clean
    assert v.as_dict()["verdict"] == "data-loss" and v.as_dict()["lost_pages"] == 1


def test_every_single_bit_flip_is_caught():
    mem, w = _pages(n=2)
    rng = np.random.default_rng(1)
    for word in rng.choice(I.PAGE_WORDS, 64, replace=False):
        page = _page(mem, 0)
        old = page[word]
        page[word] = old ^ np.uint64(1 << int(rng.integers(64)))
        assert I.STATUS_NAMES[w.verify(mem).status[0]] != "ok", word
        page[word] = old
    assert w.verify(mem).clean


def test_concurrent_writers_on_plain_memory_stay_intact():
    """No eviction at all: disjoint page sets per thread need no atomics; the record is exact."""
    mem, w = _pages(n=256, threads=2)
    w.start(mem)
    time.sleep(0.3)
    assert w.stop(timeout=30)
    v = w.verify(mem)
    assert v.clean, v.as_dict()
    assert w.record.sum() > 0 and (w.record == w.writes).all()
    assert w.latencies().size == w.batches > 0


def test_runs_of():
    m = np.array([0, 1, 1, 0, 1, 0, 0, 1], bool)
    assert runs_of(m).tolist() == [[1, 2], [4, 1], [7, 1]]
    assert runs_of(np.zeros(4, bool)).shape == (0, 2)


# ---- pure: availability and the documented rwp-sync sequence

@pytest.mark.parametrize("variant", evict.variant_names())
def test_unavailable_variants_skip_with_the_probe_reason(variant):
    from bench.trackers import probe

    cls = evict.VARIANTS[variant]
    reason = evict.unavailable(variant)
    if reason is None:
        pytest.skip(f"{variant} is available here")
    if cls.mechanism and not probe(cls.mechanism).available:
        assert reason == probe(cls.mechanism).reason
    result = evict.run(variant, evict.EvictParams(size="1M"))
    assert result.status == f"skipped: {reason}"
    assert len(result.rows) == 1 and result.rows[0]["status"] == result.status


def test_rwp_sync_refuses_anonymous_memory():
    reason = evict.unavailable("rwp-sync", evict.EvictParams(backing="anon"))
    assert reason and "anon" in reason and "second view" in reason


def test_rwp_sync_issues_the_documented_ioctl_sequence(monkeypatch):
    """RWPROTECT(all) -> SET_MODE(disable RWP_ASYNC) -> PAGEMAP_SCAN(ACCESSED) -> ... -> WAKE(all) ->
    SET_MODE(enable RWP_ASYNC); registered MODE_RWP|MODE_MISSING with RWP|RWP_ASYNC|MISSING_SHMEM."""
    with Arena("1M", "shmem") as a:
        kernel = FakeKernel(granted_features=0x7FFFF, range_ioctls=0x33C,
                            scan_regions=[(a.addr, a.addr + 4 * 4096, pagemap.PAGE_IS_ACCESSED)]).install(monkeypatch)
        ctx = types.SimpleNamespace(arena=a, uffd=uffd.Userfaultfd(RwpSync.features("shmem")), scanner=None)
        try:
            ctx.range_ioctls = ctx.uffd.register(a.addr, a.size, RwpSync.register_mode("shmem"))
            ctx.scanner = pagemap.Scanner()
            ops = RwpSync(ctx)
            ops.start()
            ops.arm()
            ops.freeze()
            hot = ops.scan()
            cold = ~hot
            ops.release(runs_of(cold), np.zeros(a.npages, bool))
        finally:
            ctx.uffd.close()
            if ctx.scanner:
                ctx.scanner.close()
        assert [c.name for c in kernel.calls] == [
            "UFFDIO_API", "UFFDIO_REGISTER", "UFFDIO_RWPROTECT", "UFFDIO_SET_MODE", "PAGEMAP_SCAN",
            "UFFDIO_WAKE", "UFFDIO_SET_MODE"]
        api, reg, arm, sync, scan, wake, async_ = (c.args for c in kernel.calls)
        assert api["features"] == uffd.UFFD_FEATURE_RWP | uffd.UFFD_FEATURE_RWP_ASYNC | uffd.UFFD_FEATURE_MISSING_SHMEM
        assert reg["mode"] == uffd.UFFDIO_REGISTER_MODE_RWP | uffd.UFFDIO_REGISTER_MODE_MISSING
        assert arm == {"range.start": a.addr, "range.len": a.size, "mode": 1}
        assert sync == {"enable": 0, "disable": uffd.UFFD_FEATURE_RWP_ASYNC}
        assert scan["category_mask"] == scan["return_mask"] == pagemap.PAGE_IS_ACCESSED
        assert scan["category_inverted"] == 0  # the hot set, never an inverted cold scan
        assert wake == {"start": a.addr, "len": a.size}
        assert async_ == {"enable": uffd.UFFD_FEATURE_RWP_ASYNC, "disable": 0}
        assert hot.sum() == 4 and hot[:4].all() and ops.ioctls == 4


# ---- live: every variant under concurrent writes

def _runs(variant, params, repeats=REPEATS):
    reason = evict.unavailable(variant, params)
    if reason:
        pytest.skip(f"{variant}: {reason}")
    results = [evict.run(variant, params, repeat=r) for r in range(repeats)]
    for res in results:
        assert res.status == "ok"
        assert len(res.rows) == params.rounds
        # stall time recorded: every batch of the run, and per round. (A round can start no batch at
        # all when both vCPUs sit in one long stall -- or are descheduled -- across it; that stall
        # is then the batch that spans it.)
        assert res.latencies.size > 0 and res.rows[0]["run_lat_p99_ns"] > 0 and res.rows[0]["run_lat_max_ns"] > 0
        assert all("lat_p99_ns" in row and "win_lat_max_ns" in row for row in res.rows)
        assert sum(row["batches"] for row in res.rows) > 0 and sum(row["win_batches"] for row in res.rows) > 0
        assert res.rows[0]["handler_errors"] == 0 and res.rows[0]["log_lost"] == 0
    return results


def _assert_safe(results):
    evicted = refaults = 0
    for res in results:
        assert res.verdict.clean, (res.variant, res.verdict.as_dict())
        evicted += sum(r["evicted_pages"] for r in res.rows)
        refaults += sum(r["refaults"] for r in res.rows)
    assert evicted > 0, "nothing was evicted: the test proves nothing"
    assert refaults > 0, "no evicted page was ever fetched back: the refault path went untested"


@pytest.mark.root
@pytest.mark.mechanism("uffd-wp")
@pytest.mark.parametrize("backing", ["shmem", "anon"])
def test_uffd_wp_loses_nothing(backing):
    results = _runs("uffd-wp", replace(HAMMER, backing=backing))
    _assert_safe(results)
    assert any(r["window_seen_pages"] for res in results for r in res.rows)  # writes did block


@pytest.mark.root
@pytest.mark.mechanism("uffd-minor")
def test_shmem_minor_loses_nothing():
    results = _runs("shmem-minor", HAMMER)
    _assert_safe(results)
    assert all(sum(r["tracking_faults"] for r in res.rows) > 0 for res in results)  # tracking is by MINOR faults


@pytest.mark.root
@pytest.mark.mechanism("uffd-minor")
def test_rescue_keeps_touched_pages_and_loses_nothing():
    results = _runs("shmem-minor", replace(HAMMER, rescue=True), repeats=2)
    _assert_safe(results)
    assert sum(r["rescued_pages"] for res in results for r in res.rows) > 0


@pytest.mark.root
@pytest.mark.parametrize("backing", ["shmem", "anon"])
def test_racy_variant_is_caught_losing_data(backing):
    results = _runs("racy", replace(HAMMER, backing=backing))
    for res in results:  # every run, not just one of them
        v = res.verdict
        assert not v.clean and v.count("lost") + v.count("torn") > 0, v.as_dict()
        assert res.rows[0]["verdict"] == "data-loss" and res.rows[0]["lost_writes"] > 0


@pytest.mark.root
def test_no_eviction_baseline_is_clean_and_evicts_nothing():
    (res,) = _runs("none", HAMMER, repeats=1)
    assert res.verdict.clean
    assert all(r["evicted_pages"] == 0 and r["refaults"] == 0 for r in res.rows)


@pytest.mark.mechanism("rwp")
def test_rwp_sync_loses_nothing():
    params = IN_VM if os.environ.get("HOTBENCH_IN_VM") else HAMMER
    results = _runs("rwp-sync", params, repeats=2)
    _assert_safe(results)
    rows = [r for res in results for r in res.rows]
    assert sum(r["window_seen_pages"] for r in rows) > 0  # reads and writes to evicting pages did block
    assert all(r["uffd_ioctls"] == 4 for r in rows)      # RWPROTECT, SET_MODE x2, WAKE: no per-run calls


# ---- the CLI

def test_cli_list():
    proc = subprocess.run([sys.executable, "-m", "bench", "evict", "--list"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    for name in evict.variant_names():
        assert name in proc.stdout


@pytest.mark.root
def test_cli_runs_and_writes_rows(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "evict", "--variant", "none,racy", "--size", "8M",
                           "--rounds", "1", "--interval", "50ms", "--hold", "20ms", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    import json

    data = json.loads(out.read_text())
    assert data["format"] == "hotbench-evict" and data["version"] == 2
    assert {r["variant"] for r in data["rows"]} == {"none", "racy"}
    assert "racy" in proc.stdout and "none" in proc.stdout


# ---- placement of the vCPU threads and the fault handler

@pytest.mark.root
@pytest.mark.mechanism("uffd-minor")
@pytest.mark.parametrize("placement", ["same-cpu", "other-cpu", "unpinned"])
def test_placement_pins_the_vcpus_and_the_handler_and_is_recorded(placement):
    allowed = sorted(os.sched_getaffinity(0))
    if placement == "other-cpu" and len(allowed) < 2:
        pytest.skip("other-cpu needs two CPUs this process may use")
    (res,) = _runs("shmem-minor", replace(HAMMER, rounds=1, placement=placement), repeats=1)
    assert res.verdict.clean
    want = {"same-cpu": (str(allowed[0]), str(allowed[0])), "other-cpu": (str(allowed[0]), str(allowed[1])),
            "unpinned": (None, None)}[placement]
    everywhere = ",".join(map(str, allowed))
    for row in res.rows:
        assert row["placement"] == placement and row["placement_requested"] == placement
        assert (row["vcpu_cpus"], row["handler_cpus"]) == want
        # what the threads were really allowed while they ran
        assert (row["vcpu_affinity"], row["handler_affinity"]) == tuple(w or everywhere for w in want)
    assert os.sched_getaffinity(0) == set(allowed)  # the caller's own affinity is given back


def test_auto_placement_follows_the_vcpu_count():
    one, two = (evict.placement_of(replace(HAMMER, threads=n)) for n in (1, 2))
    assert one.name == "same-cpu" and one.toucher == one.server
    assert two.name == "unpinned" and two.toucher is None and two.server is None


def test_cli_refuses_other_cpu_on_one_cpu():
    cpu = min(os.sched_getaffinity(0))
    proc = subprocess.run([sys.executable, "-m", "bench", "evict", "--placement", "other-cpu", "--rounds", "1"],
                          capture_output=True, text=True, timeout=300, preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: placement other-cpu: other-cpu placement needs two CPUs; this process may use one"]
