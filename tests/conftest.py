"""Shared test gates: skip only where a mechanism is truly absent, and let the VM runner
(or a developer) turn such skips into failures with HOTBENCH_REQUIRE=mech1,mech2."""

import os

import pytest

REQUIRED = {m.strip() for m in os.environ.get("HOTBENCH_REQUIRE", "").split(",") if m.strip()}


def require_root():
    if os.geteuid() != 0:
        pytest.skip("needs root (userfaultfd for kernel faults, pagemap PFNs, sysfs)")


def require_mechanism(name: str):
    """Skip when the running kernel lacks *name* — or fail, when HOTBENCH_REQUIRE lists it."""
    from bench.trackers import probe

    result = probe(name)
    if result.available:
        return
    if name in REQUIRED or "all" in REQUIRED:
        pytest.fail(f"{name} is required here (HOTBENCH_REQUIRE) but unavailable: {result.reason}")
    pytest.skip(f"{name} unavailable: {result.reason}")


def pytest_runtest_setup(item):
    if item.get_closest_marker("root"):
        require_root()
    marker = item.get_closest_marker("mechanism")
    if marker:
        require_root()
        for name in marker.args:  # @pytest.mark.mechanism("referenced", "uffd-wp"): every one of them
            require_mechanism(name)


def skip_unless_in_vm(reason: str):
    """Skip for a host restriction (e.g. debugfs under kernel lockdown) — but fail inside a
    'hotbench vm' guest, whose kernels are ours and have no such restriction."""
    if os.environ.get("HOTBENCH_IN_VM") == "1":
        pytest.fail(f"inside a hotbench vm guest this must work: {reason}")
    pytest.skip(reason)
