"""Ground truth: deterministic, and exactly what the kernels touch."""

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import workloads

REPO = Path(__file__).resolve().parents[2]
NPAGES, PAGE = 256, 4096
SPECS = ["uniform", "zipf", "zipf:s=0.7,scatter=1", "hotcold", "scan", "stride:stride=5,start=2",
         "phase:every=1", "masim", "masim:config=example"]


def make(spec, **kw):
    kw = {"npages": NPAGES, "page_size": PAGE, "seed": 7, "accesses": 600, **kw}
    return workloads.create(spec, **kw)


def digest(w, intervals=range(4)):
    h = hashlib.sha256()
    for i in intervals:
        t = w.truth(i)
        h.update(t.read.tobytes())
        h.update(t.written.tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("spec", SPECS)
def test_same_seed_same_truth_different_seed_different(spec):
    assert digest(make(spec)) == digest(make(spec))
    assert digest(make(spec)) != digest(make(spec, seed=8))


def test_truth_is_per_interval():
    w = make("uniform")
    assert digest(w, [0]) != digest(w, [1])
    assert digest(w, [3]) == digest(make("uniform"), [3])   # no hidden state between calls


def test_same_truth_in_a_fresh_process():
    code = ("import hashlib, workloads\n"
            "for spec in %r:\n"
            "    w = workloads.create(spec, npages=%d, page_size=%d, seed=7, accesses=600, threads=2)\n"
            "    h = hashlib.sha256()\n"
            "    for i in range(4):\n"
            "        t = w.truth(i); h.update(t.read.tobytes()); h.update(t.written.tobytes())\n"
            "    print(h.hexdigest())\n") % (SPECS, NPAGES, PAGE)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == [digest(make(spec, threads=2)) for spec in SPECS]


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("spec", SPECS)
def test_truth_matches_touched_pages(spec, threads):
    # write_ratio=1: every rw access stores a non-zero byte, so the written pages show.
    w = make(spec, threads=threads, write_ratio=1.0)
    for interval in (0, 5):
        arena = np.zeros(NPAGES * PAGE, np.uint8)
        w.run_interval(arena, interval)
        touched = arena.reshape(NPAGES, PAGE).any(axis=1)
        t = w.truth(interval)
        assert np.array_equal(touched, t.written)
        assert t.written.sum() > 0
        if not spec.startswith("masim"):
            assert not t.read.any()                  # no ro regions outside masim


@pytest.mark.parametrize("spec", ["uniform", "hotcold", "zipf"])
def test_mixed_reads_and_writes(spec):
    # write_ratio=0.5: reads leave bytes alone, so written pages are exactly the non-zero ones;
    # one thread on a fresh arena gives the same checksum every time.
    w = make(spec, write_ratio=0.5)
    arena = np.zeros(NPAGES * PAGE, np.uint8)
    checksum = w.run_interval(arena, 1)
    assert w.run_interval(np.zeros_like(arena), 1) == checksum
    t = w.truth(1)
    assert np.array_equal(arena.reshape(NPAGES, PAGE).any(axis=1), t.written)
    assert t.read.sum() > 0 and t.written.sum() > 0


def test_checksum_sums_bytes_read():
    w = make("uniform", write_ratio=0.0, accesses=1000)
    arena = np.full(NPAGES * PAGE, 3, np.uint8)
    assert w.run_interval(arena, 0) == 3 * 1000
    w3 = make("uniform", write_ratio=0.0, accesses=1000, threads=3)
    assert w3.run_interval(arena, 0) == 3 * 1000


def test_counts_add_up():
    w = make("hotcold", accesses=999, threads=4)
    reads, writes = w.counts(2)
    assert int(reads.sum()) + int(writes.sum()) == 999


def test_warmup_then_run():
    w = make("masim:config=example", threads=2)
    w.warmup()
    arena = np.zeros(NPAGES * PAGE, np.uint8)
    for i in range(8):                                 # crosses phases with 1..5 segments
        w.run_interval(arena, i)
