"""VM test fixtures: the two kernels of issue 3, fetched/built once per session and cached
under ~/.cache/hotbench/kernels (a second run reuses them), each stage's duration printed.

VM tests skip when QEMU or busybox-static is missing (run tools/setup-system) or when
already inside a hotbench VM; HOTBENCH_VM_TESTS=1 turns those skips into failures (CI),
HOTBENCH_VM_TESTS=0 skips every VM test.
"""

import os
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODE = os.environ.get("HOTBENCH_VM_TESTS", "")


def _missing() -> str | None:
    if os.environ.get("HOTBENCH_IN_VM"):
        return "already inside a hotbench VM"
    if shutil.which("qemu-system-x86_64") is None:
        return "qemu-system-x86_64 not found: run tools/setup-system"
    if not Path("/bin/busybox").is_file():
        return "/bin/busybox (busybox-static) not found: run tools/setup-system"
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        return "not a Debian host (apt-get, dpkg-deb): the test kernels come from Debian"
    return None


def pytest_runtest_setup(item):
    if not item.get_closest_marker("vm"):
        return
    if MODE == "0":
        pytest.skip("HOTBENCH_VM_TESTS=0")
    why = _missing()
    if why and MODE == "1" and not os.environ.get("HOTBENCH_IN_VM"):
        pytest.fail(f"HOTBENCH_VM_TESTS=1 but {why}")
    if why:
        pytest.skip(why)


@contextmanager
def shown(request):
    """Let fetch/build progress reach the terminal (pytest captures it otherwise)."""
    capman = request.config.pluginmanager.getplugin("capturemanager")
    if capman is None:
        yield
        return
    with capman.global_and_fixture_disabled():
        yield


def _stage(request, what, fn):
    with shown(request):
        print(f"\n[vm tests] {what} ...", file=sys.stderr, flush=True)
        start = time.monotonic()
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 - every VM test of this kernel fails with this one line
            pytest.fail(f"{what} failed: {e}", pytrace=False)
        print(f"[vm tests] {what}: {time.monotonic() - start:.1f} s", file=sys.stderr, flush=True)
    return result


@pytest.fixture(scope="session")
def say(request):
    """Print a line on the terminal even while pytest captures output (stage durations)."""
    def say(text):
        with shown(request):
            print(f"[vm tests] {text}", file=sys.stderr, flush=True)
    return say


@pytest.fixture(scope="session")
def debian_kernel(request):
    """Debian's newest 7.3 kernel from trixie-backports."""
    from bench.vm.kernels import debian

    return _stage(request, "fetch debian:7.3", lambda: debian.fetch("debian:7.3"))


@pytest.fixture(scope="session")
def built_kernel(request):
    """Debian's linux-source-7.3 built with bench/kernel/hotbench.config."""
    from bench.vm.kernels import build

    return _stage(request, "build linux-source-7.3 + hotbench.config", lambda: build.build_debian("7.3"))
