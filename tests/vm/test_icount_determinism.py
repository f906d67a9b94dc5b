"""Instruction-clock runs are deterministic (issue 12): two boots of the same cells under
``hotbench vm --icount`` agree phase by phase, an A/A comparison of them reports no change, and
a tracker made heavier on purpose is reported as a regression of the size it was made heavier.

Boot A runs the six trackers of the built 7.3 kernel (rwp, idle-page, soft-dirty, mglru, uffd-wp,
mprotect) on anon and shmem arenas, plus ``uffd-wp-extra`` (defined below: uffd-wp whose collect
adds a read-only PAGEMAP_SCAN over part of the arena, sized by an environment variable, 0 here).
Boot B runs the same, then ``uffd-wp-extra`` alone with its extra scan on. Both boots print
their durations (the CI budget is 90 minutes).
"""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.vm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TRACKERS = ["rwp", "idle-page", "soft-dirty", "mglru", "uffd-wp", "mprotect"]
CELLS = ["--workloads", "hotcold", "--backing", "anon,shmem", "--size", "8M", "--intervals", "4",
         "--accesses", "4000"]
EXTRA_FRACTION = "0.125"  # of the arena scanned again in B's heavier variant: a few percent of a collect

PLUGIN = textwrap.dedent('''
    """uffd-wp with an extra read-only PAGEMAP_SCAN in collect: a deliberately heavier tracker."""
    import os
    import time

    from bench.kernel import pagemap
    from bench.trackers.uffd_wp import UffdWpTracker


    class UffdWpExtra(UffdWpTracker):
        name = "uffd-wp-extra"
        summary = "uffd-wp plus a read-only scan of a fraction of the arena (HOTBENCH_TEST_EXTRA_SCAN)"

        def collect(self):
            observation = super().collect()
            fraction = float(os.environ.get("HOTBENCH_TEST_EXTRA_SCAN", "0"))
            if fraction:
                end = self.arena.addr + int(self.arena.size * fraction) // 4096 * 4096
                t0 = time.thread_time_ns()
                self._scanner.scan(self.arena.addr, end, category_mask=pagemap.PAGE_IS_PRESENT,
                                   return_mask=pagemap.PAGE_IS_PRESENT)
                observation.extra["extra_scan_ns"] = time.thread_time_ns() - t0
            return observation
''')


def _plugin(directory: Path) -> Path:
    """A distribution on PYTHONPATH whose entry point adds the tracker (the registry's plug-in door)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hb_extra_tracker.py").write_text(PLUGIN)
    info = directory / "hb_extra_tracker-0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hb-extra-tracker\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[hotbench.trackers]\nuffd-wp-extra = hb_extra_tracker:UffdWpExtra\n")
    return directory


def _boot(kernel, out: Path, plugin: Path, script: str, say) -> float:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "bench", "vm", "--kernel", str(kernel.image), "--icount",
                           "--mem", "1G", "--share", str(out), "--share", str(plugin), "--timeout", "3000",
                           "--env", f"PYTHONPATH={ROOT}{os.pathsep}{plugin}", "--", "sh", "-c", script],
                          cwd=ROOT, capture_output=True, text=True, timeout=3300)
    seconds = time.monotonic() - start
    say(f"icount boot {out.name}: {seconds:.0f} s, exit {proc.returncode}")
    assert proc.returncode == 0, "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
    return seconds


def _run(out: Path, trackers: list[str], extra: str = "0") -> str:
    argv = ["python3", "-m", "bench", "run", "--trackers", ",".join(trackers), *CELLS, "--out", str(out)]
    return f"HOTBENCH_TEST_EXTRA_SCAN={extra} " + " ".join(argv)


@pytest.fixture(scope="module")
def boots(built_kernel, tmp_path_factory, say):
    root = tmp_path_factory.mktemp("icount")
    plugin = _plugin(root / "plugin")
    every = TRACKERS + ["uffd-wp-extra"]
    a, b = root / "A", root / "B"
    _boot(built_kernel, a, plugin, _run(a / "same", every), say)
    _boot(built_kernel, b, plugin, _run(b / "same", every) + " && " + _run(b / "heavier", ["uffd-wp-extra"],
                                                                            EXTRA_FRACTION), say)
    from bench import results

    return [results.run_dirs(d / name)[-1] for d, name in ((a, "same"), (b, "same"), (b, "heavier"))]


def test_two_boots_agree_in_every_phase(boots, say):
    from analysis import determinism

    a, b, _ = boots
    pairs = determinism.paired(a, b)
    say("two boots, relative difference per phase:\n" + determinism.text(pairs))
    assert set(pairs["tracker"]) >= set(TRACKERS)
    # the tracker thread's CPU time of each phase: the wall columns also count other guest threads'
    # work that lands in a phase (a kworker, RCU: once +53 % of rwp's arm; docs/icount.md)
    # phases of 170 K-3 M instructions: a timer tick landing in one interval moves it by a few
    # percent (recorded 32M boots are held to 1 % per interval in tests/analysis), not the median
    say("per interval beyond 3 % / 1 % (reported, not asserted):\n"
        + "\n".join(determinism.violations(pairs, phases=determinism.CPU_PHASES)))
    # idle page tracking's cost follows where the arena's pages lie (bitmap words): when the two
    # boots placed them differently, its costs differ for that reason, said here, not judged
    placed = determinism.placement(a, b)
    say("placed differently (not judged): " + ("; ".join(f"{'/'.join(map(str, c))}: {w}" for c, w in placed.items())
                                               or "none"))
    # The promise of 1 % (or a timer tick's work) per cell median is held on recorded 32M boots
    # (tests/analysis/test_determinism.py). These 8M cells on the HZ=1000 built kernel meet it in
    # most cells, not all (measured: mglru's collect +1.1 % in one pair of boots and 0.14 % in
    # another; soft-dirty's collect +7.8 K instructions in two intervals): reported here.
    say("cell medians beyond 1 % and a tick's work (reported): "
        + ("\n".join(determinism.cell_violations(pairs, placed=placed)) or "none"))
    # What must hold is what the nightly relies on: no cell moves by the icount suite's threshold.
    from bench.nightly.suite import load_suite

    limit = min(load_suite("icount").thresholds[p] for p in determinism.CPU_PHASES)
    bad = determinism.cell_violations(pairs, limit=limit, placed=placed)
    assert not bad, f"two boots' cell medians differ beyond the suite's {limit:.0%}:\n" + "\n".join(bad)


def test_a_a_comparison_reports_no_change(boots):
    from analysis import compare

    a, b, _ = boots
    from analysis import determinism

    result = compare.compare(compare.load_run(a), compare.load_run(b))
    # a cell whose pages the two boots placed differently may change (idle page: bitmap words);
    # every other metric must not
    placed = {"/".join(map(str, cell[:3])) for cell in determinism.placement(a, b)}

    def explained(row):
        return row["metric"].split(":", 1)[1].rsplit("/", 1)[0] in placed

    regressions = [r for r in result.regressions if not explained(r)]
    assert not regressions, json.dumps(regressions, indent=1, default=str)
    changed = [r for r in result.rows if r["verdict"] not in ("", "unchanged", "inconclusive") and not explained(r)]
    assert not changed, json.dumps(changed, indent=1, default=str)


def test_a_heavier_tracker_is_a_regression_of_its_size(boots):
    import pandas as pd

    from analysis import compare

    a, _, heavier = boots
    heavy = pd.read_parquet(heavier / "samples.parquet")
    heavy = heavy.assign(extra_ns=heavy["extra"].map(lambda e: json.loads(e)["extra_scan_ns"]))
    base = pd.read_parquet(a / "samples.parquet")
    base = base[base["tracker"] == "uffd-wp-extra"]
    result = compare.compare(compare.load_run(a), compare.load_run(heavier))
    regressed = {r["metric"]: r for r in result.regressions}
    for backing in ("anon", "shmem"):
        metric = f"collect_cpu_ns:uffd-wp-extra/hotcold/{backing}/8M"
        assert metric in regressed, f"{metric} not flagged: {sorted(regressed)}"
        later = (base["backing"] == backing) & (base["interval"] > 0)
        expected = heavy.loc[heavy["backing"] == backing, "extra_ns"].median() / base.loc[later, "collect_cpu_ns"].median()
        assert expected >= 0.03  # the variant is a regression the promise covers
        assert regressed[metric]["change"] == pytest.approx(expected, rel=0.3)
