"""Nightly suites run in guests (bench/nightly/guests.py): which cached kernel a [vm] spec names,
the 'hotbench vm --icount' command line, and a kernel missing from the cache."""

import io
import json

import pytest

from bench.nightly import guests
from bench.nightly.suite import load_suite
from bench.errors import HotbenchError


def _cache_entry(root, key, meta):
    entry = root / "hotbench" / "kernels" / key
    entry.mkdir(parents=True)
    (entry / "vmlinuz").write_bytes(b"")
    (entry / "meta.json").write_text(json.dumps(meta))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    _cache_entry(tmp_path, "debian-old", {"kind": "debian", "version": "7.3.1-1", "created": 1})
    _cache_entry(tmp_path, "debian-new", {"kind": "debian", "version": "7.3.4-1", "created": 2})
    _cache_entry(tmp_path, "debian-618", {"kind": "debian", "version": "6.18.15-1", "created": 3})
    _cache_entry(tmp_path, "build-73", {"kind": "build", "source": "linux-source-7.3 7.3.4-1", "created": 4})
    return tmp_path


def test_a_spec_names_the_newest_cached_kernel_of_its_kind_and_version(cache):
    assert guests.find_kernel("debian:7.3")[0].key == "debian-new"
    assert guests.find_kernel("build:7.3")[0].key == "build-73"
    kernel, reason = guests.find_kernel("build:6.18")
    assert kernel is None and "hotbench kernel build --debian 6.18" in reason
    with pytest.raises(HotbenchError, match="debian:VERSION"):
        guests.find_kernel("mainline:7.3")


def test_the_guest_runs_the_suite_by_name_under_icount_filed_as_its_own_machine(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("HOTBENCH_MACHINE", "box")
    suite = load_suite("icount", quick=True)
    kernel, _ = guests.find_kernel("debian:7.3")
    argv = guests.vm_argv(suite, "debian:7.3", kernel, tmp_path / "history", quick=True)
    vm, guest = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    assert vm[1:4] == ["-m", "bench", "vm"] and "--icount=0" in vm and "HOTBENCH_MACHINE=box-debian-7.3" in vm
    assert vm[vm.index("--kernel") + 1] == "debian-new"
    assert guest == ["python3", "-m", "bench", "nightly", "--suite", "icount", "--history",
                     str(tmp_path / "history"), "--quick"]


def test_a_kernel_missing_from_the_cache_is_reported_and_the_others_still_run(cache, tmp_path, monkeypatch):
    booted = []

    class Booted:
        returncode = 0

        def __init__(self, argv, cwd):
            booted.append(argv)

        def wait(self):
            return 0

        def send_signal(self, signum):
            pass

    monkeypatch.setattr(guests.subprocess, "Popen", Booted)
    suite = load_suite("icount")
    suite = type(suite)(**{**suite.__dict__, "vm": {**suite.vm, "kernels": ["build:6.18", "debian:7.3"]}})
    log = io.StringIO()
    outcomes = guests.run_in_guests(suite, tmp_path / "history", log=log)
    assert [(o["kernel"], o["status"]) for o in outcomes] == [("build:6.18", 1), ("debian:7.3", 0)]
    assert "not in the kernel cache" in outcomes[0]["reason"] and "build:6.18" in log.getvalue()
    assert len(booted) == 1 and "debian-new" in booted[0]


def test_estimate_of_a_guest_suite_says_it_is_not_estimated(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    out = subprocess.run([sys.executable, "-m", "bench", "nightly", "--suite", "icount", "--estimate",
                          "--history", str(tmp_path)], cwd=Path(__file__).resolve().parents[2],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "guests of debian:7.3, build:7.3" in out.stdout and "not estimated" in out.stdout
    assert not list(tmp_path.iterdir())  # nothing booted, nothing written
