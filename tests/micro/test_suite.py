"""``hotbench micro`` through the CLI, in subprocesses: pyperf JSON out, workers re-executed,
``compare_to`` reads it, unavailable primitives skipped with a reason.

Tiny arenas and pyperf options that keep each run to seconds; nothing here judges timings.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyperf
import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--size", "8M", "--fault-size", "2M", "--warmups", "0", "--loops", "1"]
# One per family: a per-GiB scan, a per-GiB arm and a per-page fault, all on 6.7+ host kernels.
PICK = r"^(scan/pagemap_scan/wp_matching/1pct/4k|arm/mprotect/1pct/4k|fault/first-touch/4k)$"
PICKED = {"scan/pagemap_scan/wp_matching/1pct/4k", "arm/mprotect/1pct/4k", "fault/first-touch/4k"}
NAME_SHAPES = (r"^arm/[a-z_0-9]+/(0|1|100)pct/4k$", r"^scan/[a-z_]+/[a-z_]+/(0|1|100)pct/4k$",
               r"^fault/[a-z-]+/(4k|thp)$")


def run(*args, module=("-m", "bench", "micro"), timeout=300):
    return subprocess.run([sys.executable, *module, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def listing() -> dict[str, str]:
    out = run("--list")
    assert out.returncode == 0, out.stderr
    rows = {}
    for line in out.stdout.splitlines():
        name, _, status = line.partition(" ")
        rows[name] = status.strip()
    return rows


def check_suite(path: Path, expected: set[str]) -> pyperf.BenchmarkSuite:
    suite = pyperf.BenchmarkSuite.load(str(path))
    assert set(suite.get_benchmark_names()) == expected
    for bench in suite.get_benchmarks():
        values = bench.get_values()
        assert values and all(v > 0 for v in values), (bench.get_name(), values)
        meta = bench.get_metadata()
        assert meta["unit"] == "second"
        assert meta["hotbench_unit"] == ("seconds per 4 KiB page touched" if bench.get_name().startswith("fault/")
                                         else "seconds per GiB of arena")
        assert meta["kernel_release"] and meta["thp_enabled"] and meta["accel"] == "native"
        assert meta["hotbench_comparable"] == "native"
    return suite


def test_names_follow_the_documented_shapes():
    import re

    from bench.micro import cases

    names = [case.name for case in cases()]
    assert len(names) == len(set(names))
    for name in names:
        assert any(re.match(shape, name) for shape in NAME_SHAPES), name
    assert {case.per for case in cases()} == {"GiB", "page"}


def test_help_lists_ours_and_pyperfs_options():
    out = run("--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: hotbench micro")
    for option in ("--fast", "--output", "--processes", "--bench", "--size", "--fault-size", "--cold", "--list"):
        assert option in out.stdout


def test_bad_regex_is_one_line():
    out = run("--bench", "(")
    assert out.returncode == 1
    assert out.stderr.startswith("error: bad --bench regex") and out.stderr.count("\n") == 1, out.stderr


@pytest.mark.root
def test_fast_run_writes_pyperf_json_and_compare_to_reads_it(tmp_path):
    """--fast through 'hotbench micro', and the same suite via 'python -m bench.micro': compare_to reads both."""
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    out = run("--fast", "-o", str(a), "--bench", PICK, *TINY)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    suite = check_suite(a, PICKED)
    # pyperf's fast mode: at least 3 worker processes, each one run in the file
    assert all(len(bench.get_runs()) >= 3 for bench in suite.get_benchmarks())
    arenas = {bench.get_name(): bench.get_metadata()["hotbench_arena_bytes"] for bench in suite.get_benchmarks()}
    assert arenas["fault/first-touch/4k"] == 2 << 20 and arenas["arm/mprotect/1pct/4k"] == 8 << 20
    assert suite.get_benchmark("fault/first-touch/4k").get_metadata()["inner_loops"] == (2 << 20) // 4096

    out = run("-o", str(b), "--bench", PICK, "--processes", "1", "--values", "1", *TINY,
              module=("-m", "bench.micro"))
    assert out.returncode == 0, out.stdout + out.stderr
    check_suite(b, PICKED)

    out = subprocess.run([sys.executable, "-m", "pyperf", "compare_to", str(a), str(b)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for name in PICKED:
        assert name in out.stdout


@pytest.mark.parametrize("option", ["-o", "--append"])
def test_an_output_in_no_directory_is_refused_before_anything_runs(tmp_path, option):
    out = run(option, str(tmp_path / "nowhere" / "x.json"), "--bench", PICK, *TINY)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr  # (a line may say whom it waited for)
    assert out.stderr.splitlines()[-1].startswith(f"error: {option} {tmp_path}/nowhere/x.json: no directory "
                                                  f"{tmp_path}/nowhere;"), out.stderr


@pytest.mark.root
def test_existing_output_is_refused(tmp_path):
    target = tmp_path / "x.json"
    target.write_text("{}")
    out = run("-o", str(target), "--bench", PICK, *TINY)
    assert out.returncode == 1 and "already exists" in out.stdout + out.stderr
    assert target.read_text() == "{}"


@pytest.mark.root
def test_unavailable_primitives_are_skipped_with_a_reason(tmp_path):
    rows = listing()
    missing = {name: status for name, status in rows.items() if status.startswith("skip: ")}
    if not missing:
        pytest.skip("every primitive is available on this kernel")
    name = next(iter(missing))
    target = tmp_path / "s.json"
    out = run("-o", str(target), "--bench", f"^({name}|fault/first-touch/4k)$", "--processes", "1", "--values", "1",
              *TINY)
    assert out.returncode == 0, out.stdout + out.stderr
    skip_lines = [line for line in out.stderr.splitlines() if line.startswith("skip ")]
    assert skip_lines == [f"skip {name}: {missing[name][len('skip: '):]}"], out.stderr
    assert len(skip_lines[0]) > len(f"skip {name}: ") + 10  # a real reason, not an empty one
    check_suite(target, {"fault/first-touch/4k"})


@pytest.mark.root
def test_only_unavailable_ones_is_an_error(tmp_path):
    missing = [name for name, status in listing().items() if status.startswith("skip: ")]
    if not missing:
        pytest.skip("every primitive is available on this kernel")
    out = run("-o", str(tmp_path / "n.json"), "--bench", f"^{missing[0]}$", *TINY)
    assert out.returncode == 1
    assert out.stderr.splitlines()[-1].startswith("error: no benchmark to run"), out.stderr
    assert not (tmp_path / "n.json").exists()


@pytest.mark.root
def test_accel_label_reaches_the_workers(tmp_path):
    target = tmp_path / "t.json"
    out = subprocess.run([sys.executable, "-m", "bench", "micro", "-o", str(target), "--bench",
                          "^fault/first-touch/4k$", "--processes", "1", "--values", "1", *TINY], cwd=ROOT,
                         capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "HOTBENCH_ACCEL": "tcg"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "not comparable to native" in out.stderr
    data = json.loads(target.read_text())
    meta = pyperf.BenchmarkSuite.load(str(target)).get_benchmarks()[0].get_metadata()
    assert meta["accel"] == "tcg" and meta["hotbench_comparable"] == "not comparable to native (accel=tcg)"
    assert data["version"]



@pytest.mark.root
def test_idle_bitmap_cases_drive_the_bitmap_file(tmp_path, monkeypatch):
    """The idle-page arm and scan plumbing against a stand-in bitmap file (kernels without
    CONFIG_IDLE_PAGE_TRACKING cannot run them for real): the arena's PFN bits are written."""
    import contextlib

    import numpy as np

    from bench.micro import suite as micro
    from bench.kernel import page_idle

    stand_in = tmp_path / "bitmap"
    stand_in.write_bytes(b"")
    monkeypatch.setattr(page_idle, "PAGE_IDLE_BITMAP", str(stand_in))
    cases = {case.name: case for case in micro.cases()}
    for name in ("arm/idle_bitmap_set/1pct/4k", "scan/idle_bitmap/read/1pct/4k"):
        with contextlib.ExitStack() as stack:
            once = cases[name].setup(2 << 20, stack)
            assert once() > 0 and once() > 0
        data = np.frombuffer(stand_in.read_bytes(), np.uint64)
        assert data.any()
    # at least the 512 PFNs of one 2 MiB arena were marked
    assert sum(bin(int(w)).count("1") for w in data) >= 512


# ---------------------------------------------------------------- --cold

def test_cold_option_parsing(tmp_path):
    import argparse

    from bench.micro import suite as micro

    assert micro._cold_size("512M") == 512 << 20
    assert micro._cold_size("4096") == 4096
    with pytest.raises(argparse.ArgumentTypeError):
        micro._cold_size("lots")
    with pytest.raises(argparse.ArgumentTypeError):
        micro._cold_size("8")
    # the default: twice the highest level's size
    for level, size in ((1, "48K"), (2, "2048K"), (3, "491520K")):
        index = tmp_path / f"index{level}"
        index.mkdir()
        (index / "level").write_text(f"{level}\n")
        (index / "size").write_text(f"{size}\n")
    assert micro.last_level_cache(tmp_path) == 491520 << 10
    assert micro.last_level_cache(tmp_path / "absent") == 0
    parser = argparse.ArgumentParser()
    micro._add_arguments(parser)
    assert parser.parse_args([]).cold is None
    assert parser.parse_args(["--cold=512M"]).cold == 512 << 20
    assert parser.parse_args(["--cold", "64M", "--size", "8M"]).cold == 64 << 20
    if micro.last_level_cache():
        assert parser.parse_args(["--cold", "--size", "8M"]).cold == 2 * micro.last_level_cache()


def test_cold_eviction_runs_before_each_timed_region_and_is_not_timed(monkeypatch):
    """A stand-in case whose once() has an untimed preparation and a timed region of constant
    length: with --cold, the scratch is written once per timed region, after the preparation,
    and time_func's total is still loops x that constant (the writes are not in it)."""
    from bench.micro import kit
    from bench.micro import suite as micro

    order = []
    constant = 1e-3

    class Clock:  # each timed region reads the clock twice: it lasts exactly `constant`
        ticks = 0

        def perf_counter(self):
            Clock.ticks += 1
            start_of_pair = (Clock.ticks - 1) // 2 * 10.0
            return start_of_pair + (constant if Clock.ticks % 2 == 0 else 0.0)

    def setup(size, stack):
        def once():
            order.append("prepare")
            return kit.timed(order.append, "timed")
        return once

    monkeypatch.setattr(kit, "time", Clock())
    monkeypatch.setattr(micro, "_scratch", None)
    case = kit.Case("scan/fake/read/1pct/4k", "GiB", None, "anon", "nothing", setup)
    bench = micro._Benchmark(case, micro.GIB, cold_bytes=4 << 20)
    evict = micro.Scratch.evict

    def spy(self):
        order.append("evict")
        evict(self)
    monkeypatch.setattr(micro.Scratch, "evict", spy)
    loops = 5
    assert bench.time_func(loops) == pytest.approx(loops * constant)
    assert order == ["prepare", "evict", "timed"] * loops
    assert bench.scratch.evictions == loops
    assert (bench.scratch.buffer[::micro.COLD_STRIDE] == 1 + loops).all()  # every line written each time
    assert (bench.scratch.buffer[1::micro.COLD_STRIDE] == 1).all()
    assert kit.before_timed is None  # the hook is gone after time_func
    assert bench.metadata()["hotbench_cold_bytes"] == 4 << 20

    # warm: no scratch, no eviction
    order.clear()
    warm = micro._Benchmark(case, micro.GIB)
    assert warm.time_func(2) == pytest.approx(2 * constant) and order == ["prepare", "timed"] * 2
    assert warm.scratch is None and warm.metadata()["hotbench_cold_bytes"] == 0
    bench.close()
    warm.close()


@pytest.mark.root
def test_cold_run_records_the_scratch_and_implies_one_loop(tmp_path):
    target = tmp_path / "c.json"
    args = ["--size", "8M", "--fault-size", "2M", "--warmups", "0"]
    out = run("-o", str(target), "--bench", "^scan/smaps/read/1pct/4k$", "--processes", "1", "--values", "2",
              "--cold=16M", *args)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "cold: 16M scratch" in out.stderr and "--loops 1" in out.stderr
    suite = check_suite(target, {"scan/smaps/read/1pct/4k"})
    bench = suite.get_benchmarks()[0]
    assert bench.get_metadata()["hotbench_cold_bytes"] == 16 << 20
    assert bench.get_metadata()["loops"] == 1
    # explicit --loops wins; a warm run records 0
    warm = tmp_path / "w.json"
    out = run("-o", str(warm), "--bench", "^scan/smaps/read/1pct/4k$", "--processes", "1", "--values", "1",
              "--loops", "2", *args)
    assert out.returncode == 0, out.stdout + out.stderr
    meta = pyperf.BenchmarkSuite.load(str(warm)).get_benchmarks()[0].get_metadata()
    assert meta["hotbench_cold_bytes"] == 0 and meta["loops"] == 2


@pytest.mark.root
def test_a_size_list_runs_each_per_gib_case_at_every_size(tmp_path):
    """--size 4M,8M: per-GiB cases become CASE@4M and CASE@8M with their arena in the metadata (the
    analysis fits cost against it); per-page cases keep their name and the fault arena."""
    target = tmp_path / "sizes.json"
    out = run("-o", str(target), "--bench", PICK, "--processes", "1", "--values", "1", "--size", "8M,4M",
              "--fault-size", "2M", "--warmups", "0", "--loops", "1")
    assert out.returncode == 0, out.stdout + out.stderr
    suite = pyperf.BenchmarkSuite.load(str(target))
    arenas = {b.get_name(): b.get_metadata()["hotbench_arena_bytes"] for b in suite.get_benchmarks()}
    assert arenas == {"scan/pagemap_scan/wp_matching/1pct/4k@4M": 4 << 20,
                      "scan/pagemap_scan/wp_matching/1pct/4k@8M": 8 << 20,
                      "arm/mprotect/1pct/4k@4M": 4 << 20, "arm/mprotect/1pct/4k@8M": 8 << 20,
                      "fault/first-touch/4k": 2 << 20}


def test_plan_and_bad_size_lists():
    import argparse

    from bench.micro import suite as micro

    by_per = {case.per: case for case in micro.cases()}
    one = micro.plan([by_per["GiB"], by_per["page"]], [micro.GIB], 2 << 20)
    assert [(name, arena) for name, _, arena in one] == [(by_per["GiB"].name, micro.GIB),
                                                          (by_per["page"].name, 2 << 20)]
    assert micro._sizes("16G, 256M,256M") == [256 << 20, 16 << 30]
    for bad in ("", "1G,3M", "0"):
        with pytest.raises(argparse.ArgumentTypeError):
            micro._sizes(bad)


def test_an_mprotect_state_past_the_map_count_limit_is_skipped_not_measured(monkeypatch):
    """At 16 GiB, 1 % scattered opened pages need more VMAs than the default vm.max_map_count: the
    handler would open the whole arena and the restore would time an arena with nothing to merge."""
    from bench.micro import suite as micro
    from bench.kernel import procfs

    cases = {case.name: case for case in micro.cases()}
    restore, scan = cases["scan/mprotect/restore/1pct/4k"], cases["scan/pagemap_scan/wp_matching/1pct/4k"]
    real = procfs.read_text
    monkeypatch.setattr(procfs, "read_text",
                        lambda path: "65530\n" if path == "/proc/sys/vm/max_map_count" else real(path))
    assert restore.too_big(1 << 30) is None and scan.too_big(16 << 30) is None
    assert "83,887 VMAs" in restore.too_big(16 << 30) and "vm.max_map_count 65,530" in restore.too_big(16 << 30)
    assert cases["scan/mprotect/restore/0pct/4k"].too_big(16 << 30) is None
    skipped = []
    kept = [p for p in micro.plan([restore, scan], [1 << 30, 16 << 30], 2 << 20) if not micro._too_big(p, skipped)]
    assert [name for name, _, _ in kept] == ["scan/mprotect/restore/1pct/4k@1G",
                                             "scan/pagemap_scan/wp_matching/1pct/4k@1G",
                                             "scan/pagemap_scan/wp_matching/1pct/4k@16G"]
    assert skipped[0][0] == "scan/mprotect/restore/1pct/4k@16G" and skipped[0][1].startswith("not at 16G: ")
    # the worker rebuilds exactly the manager's list from the names it is given
    names = ",".join(name for name, _, _ in kept)
    assert [(n, c.name, a) for n, c, a in micro._planned(names, [1 << 30, 16 << 30], 2 << 20)] == \
        [(n, c.name, a) for n, c, a in kept]


def test_an_other_cpu_case_on_one_cpu_is_skipped_with_the_reason():
    # a one-vCPU guest (the icount suite's) ran fault/rwp-sync-other-cpu and its worker failed
    from bench import micro

    case = next(c for c in micro.cases() if c.placement == "other-cpu")
    pinned = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(pinned)})
        assert case._placement_unavailable() == "other-cpu placement needs two CPUs; this process may use one"
    finally:
        os.sched_setaffinity(0, pinned)
    if len(pinned) >= 2:
        assert case._placement_unavailable() is None
