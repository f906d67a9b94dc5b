"""``hotbench micro --help``: hotbench's options first, pyperf's under their own heading, its
manager/worker internals left out (still accepted: the workers need them)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_help_puts_hotbench_first_and_names_pyperf():
    out = subprocess.run([sys.executable, "-m", "bench", "micro", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("usage: hotbench micro [--bench REGEX]")
    ours, pyperf = text.index("hotbench micro options:"), text.index("pyperf Runner options (python -m pyperf --help):")
    assert ours < pyperf
    assert all(text.index(opt) < pyperf for opt in ("--bench", "--size", "--fault-size", "--cold", "--list"))
    assert text.index("  --fast") > pyperf and text.index("  --affinity") > pyperf
    for internal in ("--worker-task", "--pipe", "--calibrate-loops", "--compare-to"):
        assert internal not in text, internal
