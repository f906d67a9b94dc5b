"""A tracker from outside the tree, added through the ``hotbench.trackers`` entry point and
nothing else, shows up in every table derived from the registry: ``hotbench probe``, ``run
--list``, ``harness``, the kconfig check, a run's report and its figures.

The plug-in is a real tracker (shmem zap read back by PAGEMAP_SCAN, written against
``bench.kernel`` only) with a mechanism, kernel config, raw primitives and plot style of its
own. It lives in a package made in a temporary directory with its own ``.dist-info`` (the
entry point), put on PYTHONPATH of subprocesses: no file of this repository names it.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.kernel import probe

ROOT = Path(__file__).resolve().parents[2]
NAME = "plugin-zap"
COLOUR = "#1B7F6A"  # in no palette of analysis.style: found in a figure only if the plug-in set it
KCONFIG = ("SHMEM", "PROC_PAGE_MONITOR", "HOTBENCH_PLUGIN_TEST")

PLUGIN = f'''
"""A hotbench tracker shipped outside hotbench: MADV_DONTNEED on shmem, then PAGEMAP_SCAN for
the pages present again."""

from bench.kernel import libc, pagemap, probe
from bench.trackers import Observation, RawPrimitive, Tracker


def probe_plugin_zap() -> probe.Probe:
    verdict = probe.probe_shmem_zap()
    return probe.Probe(verdict.available, "plug-in: " + verdict.reason, verdict.details)


def _zap(tracker, scanner):
    return lambda: libc.madvise(tracker.arena.addr, tracker.arena.size, libc.MADV_DONTNEED)


def _present(tracker, scanner):
    return lambda: scanner.scan(tracker.arena.addr, tracker.arena.end, category_mask=pagemap.PAGE_IS_PRESENT,
                                return_mask=pagemap.PAGE_IS_PRESENT)


class PluginZapTracker(Tracker):
    name = mechanism = {NAME!r}
    backings = ("shmem",)
    summary = "a plug-in: shmem zap, present pages read back"
    kernel_probe = staticmethod(probe_plugin_zap)
    kconfig = {KCONFIG!r}
    raw_primitives = {{"arm": RawPrimitive("plug-in MADV_DONTNEED", _zap),
                      "collect": RawPrimitive("plug-in PAGEMAP_SCAN PRESENT", _present)}}
    style = ({COLOUR!r}, "8")

    def start(self, arena):
        super().start(arena)
        self._scanner = pagemap.Scanner()

    def arm(self):
        _zap(self, None)()

    def collect(self):
        regions = _present(self, self._scanner)()
        return Observation(accessed=pagemap.regions_to_bitmap(regions, self.arena.addr, self.arena.npages))

    def stop(self):
        if getattr(self, "_scanner", None) is not None:
            self._scanner.close()
            self._scanner = None
        super().stop()
'''


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    """Environment of a subprocess that has the plug-in package installed (on its path)."""
    site = tmp_path_factory.mktemp("site")
    (site / "hb_plugin_zap.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "hb_plugin_zap-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hb-plugin-zap\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[hotbench.trackers]\n{NAME} = hb_plugin_zap:PluginZapTracker\n")
    return os.environ | {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}


def _run(env, *args, timeout=600) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode in (0, 2), out.stderr  # probe: 2 when some mechanism is unavailable
    return out


def _python(env, code: str):
    return json.loads(_run(env, "-c", code).stdout)


def test_the_plugin_is_absent_without_its_package():
    out = subprocess.run([sys.executable, "-m", "bench", "run", "--list"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and NAME not in out.stdout


def test_probe_lists_the_plugins_mechanism_with_its_own_verdict(plugin_env):
    verdicts = json.loads(_run(plugin_env, "-m", "bench", "probe", "--json").stdout)
    assert list(verdicts)[-1] == NAME  # plug-ins list after the built-ins (Tracker.order)
    assert verdicts[NAME]["reason"].startswith("plug-in: ")
    assert verdicts[NAME]["available"] == verdicts["shmem-zap"]["available"]


def test_run_list_shows_the_plugin(plugin_env):
    rows = [line.split() for line in _run(plugin_env, "-m", "bench", "run", "--list").stdout.splitlines()]
    assert [NAME, "page", "reads+writes"] in [row[:3] for row in rows]


def test_kconfig_check_needs_the_plugins_options(plugin_env):
    found = _python(plugin_env, textwrap.dedent(f"""
        import json
        from bench.vm.kernels import kconfig
        config = {{o: "y" for o in {KCONFIG!r}}}
        partial = {{o: "y" for o in {KCONFIG[:-1]!r}}}
        print(json.dumps([kconfig.mechanism_options()[{NAME!r}], kconfig.mechanisms(config),
                          kconfig.mechanisms(partial)]))
    """))
    options, with_all, without_one = found
    assert tuple(options) == KCONFIG
    assert NAME in with_all and NAME not in without_one


def test_harness_holds_the_plugin_against_its_raw_primitives(plugin_env):
    if probe.probe_shmem_zap().available is False:
        pytest.skip(f"shmem zap: {probe.probe_shmem_zap().reason}")
    rows, skipped = _python(plugin_env, textwrap.dedent(f"""
        import json
        from bench import harness
        rows, skipped = harness.phase_cost(4 << 20, 0.01, 1, only=[{NAME!r}])
        print(json.dumps([rows, skipped], default=str))
    """))
    assert not skipped, skipped
    assert {(r["tracker"], r["phase"]) for r in rows} == {(NAME, "arm"), (NAME, "collect")}
    assert {r["primitive"] for r in rows} == {"plug-in MADV_DONTNEED", "plug-in PAGEMAP_SCAN PRESENT"}


def test_a_run_of_the_plugin_reports_and_plots_it(plugin_env, tmp_path):
    if probe.probe_shmem_zap().available is False:
        pytest.skip(f"shmem zap: {probe.probe_shmem_zap().reason}")
    out = tmp_path / "run"
    _run(plugin_env, "-m", "bench", "run", "--out", str(out), "--trackers", NAME, "--workloads", "uniform",
         "--size", "8M", "--intervals", "2")
    _run(plugin_env, "-m", "bench", "report", str(out))
    assert NAME in (out / "report" / "report.md").read_text()
    figures = _run(plugin_env, "-m", "bench", "plot", str(out), "--figure", "precision-recall", "--format", "svg")
    svg = Path(figures.stdout.split()[0]).read_text()
    assert NAME in svg and COLOUR.lower() in svg.lower()  # its legend entry, in the colour it declared
