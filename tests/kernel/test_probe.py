"""The probe, each verdict checked against a second source (feature masks, files, config, sysfs)."""

import ctypes
import dataclasses
import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import trackers
from bench.errors import HotbenchError
from bench.kernel import damon_sysfs, mglru, page_idle, pagemap, probe, procfs, sysfs, uffd

REPO = Path(__file__).resolve().parents[2]
EXPECTED = ("rwp", "rwp-rfc", "idle-page", "mglru", "uffd-wp", "soft-dirty",
            "damon-vaddr", "damon-paddr", "referenced", "shmem-zap", "uffd-minor", "mprotect")
UFFD_MECHANISMS = ("rwp", "rwp-rfc", "uffd-wp", "uffd-minor")


@pytest.fixture
def fresh():
    probe.clear_cache()
    yield probe
    probe.clear_cache()


def _features() -> int | None:
    try:
        return uffd.api_features().features
    except OSError:
        return None


# ------------------------------------------------------------------ shape

def test_mechanisms_exact():
    assert tuple(trackers.mechanisms()) == EXPECTED


def test_probe_all_shape_and_one_line_reasons():
    results = trackers.probe_all()
    assert tuple(results) == EXPECTED
    for name, p in results.items():
        assert isinstance(p, probe.Probe) and isinstance(p.available, bool) and isinstance(p.details, dict)
        assert p.reason and "\n" not in p.reason, name
        json.dumps(p.details)


def test_probe_is_frozen_and_cached():
    p = trackers.probe("mprotect")
    assert trackers.probe("mprotect") is p
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.available = False


def test_unknown_mechanism():
    with pytest.raises(HotbenchError, match="unknown mechanism 'nope'"):
        trackers.probe("nope")


# ------------------------------------------------------------------ against a second source

@pytest.mark.root
def test_uffd_wp_iff_wp_async_and_written_category():
    features, categories = _features(), pagemap.supported_categories()
    expected = features is not None and bool(features & uffd.UFFD_FEATURE_WP_ASYNC) \
        and bool(categories & pagemap.PAGE_IS_WRITTEN)
    assert trackers.probe("uffd-wp").available == expected
    if expected:
        assert f"{features:#x}" in trackers.probe("uffd-wp").reason and f"{categories:#x}" in trackers.probe("uffd-wp").reason


@pytest.mark.root
def test_uffd_minor_iff_minor_shmem():
    features = _features()
    assert trackers.probe("uffd-minor").available == (features is not None and bool(features & uffd.UFFD_FEATURE_MINOR_SHMEM))


@pytest.mark.root
def test_rwp_never_decided_by_bits_alone():
    features = _features() or 0
    rwp, rfc = trackers.probe("rwp"), trackers.probe("rwp-rfc")
    assert not (rwp.available and rfc.available)  # bits 17/18 mean one ABI or the other
    assert "untested on a live kernel" in rfc.reason
    if not features & uffd.UFFD_FEATURE_RWP:
        assert not rwp.available and "UFFD_FEATURE_RWP (bit 17)" in rwp.reason
        assert not rfc.available and "bit 17" in rfc.reason
    if rwp.available:
        assert features & (uffd.UFFD_FEATURE_RWP | uffd.UFFD_FEATURE_RWP_ASYNC) == 0x60000
        assert pagemap.supported_categories() & pagemap.PAGE_IS_ACCESSED
        assert "UFFDIO_RWPROTECT" in rwp.reason


@pytest.mark.root
def test_idle_page_iff_bitmap_exists():
    p = trackers.probe("idle-page")
    assert p.available == os.path.exists("/sys/kernel/mm/page_idle/bitmap")
    if not p.available and not os.path.isdir("/sys/kernel/mm/page_idle"):
        assert p.reason.startswith("no /sys/kernel/mm/page_idle")


def test_mglru_absent_iff_no_enabled_file():
    p = trackers.probe("mglru")
    if not os.path.exists("/sys/kernel/mm/lru_gen/enabled"):
        assert not p.available and p.reason.startswith("no /sys/kernel/mm/lru_gen")


@pytest.mark.root
def test_damon_busy_iff_a_kdamond_exists():
    kdamonds = "/sys/kernel/mm/damon/admin/kdamonds"
    existing = sorted(n for n in os.listdir(kdamonds) if n.isdigit()) if os.path.isdir(kdamonds) else []
    for name in ("damon-vaddr", "damon-paddr"):
        p = trackers.probe(name)
        if existing:  # hotbench has created none: every kdamond is someone else's
            assert not p.available and "in use:" in p.reason and f"kdamond {existing[0]}" in p.reason, p.reason
        else:  # "in use:" is the busy verdict; an available probe says "no kdamond in use"
            assert "in use:" not in p.reason, p.reason


@pytest.mark.root
def test_damon_ops_against_avail_operations():
    avail = damon_sysfs.avail_operations()
    if avail is None:
        pytest.skip("no DAMON context exists to read avail_operations from")
    for ops in ("vaddr", "paddr"):
        p = trackers.probe(f"damon-{ops}")
        if ops not in avail:
            assert not p.available and f"'{ops}' not in avail_operations" in p.reason


def test_soft_dirty_against_config():
    value = procfs.config_value("CONFIG_MEM_SOFT_DIRTY")
    if value is None:
        pytest.skip("kernel config not readable: no second source for soft-dirty")
    p = trackers.probe("soft-dirty")
    if value == "n":
        assert not p.available and "CONFIG_MEM_SOFT_DIRTY is not set" in p.reason
    else:
        assert p.available, p.reason


def test_referenced_iff_clear_refs_and_smaps():
    smaps = procfs.read_text("/proc/self/smaps") or ""
    expected = os.path.exists("/proc/self/clear_refs") and "\nReferenced:" in smaps
    assert trackers.probe("referenced").available == expected


def test_shmem_zap_iff_present_category():
    assert trackers.probe("shmem-zap").available == bool(pagemap.supported_categories() & pagemap.PAGE_IS_PRESENT)


def test_mprotect_reports_max_map_count():
    p = trackers.probe("mprotect")
    assert p.available
    assert f"vm.max_map_count {procfs.read_text('/proc/sys/vm/max_map_count')}" in p.reason


# ------------------------------------------------------------------ leaves no trace

def _fd_targets() -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return out


def test_probe_writes_only_its_own_clear_refs_and_leaks_nothing(fresh, monkeypatch):
    damon_before = damon_sysfs.kdamonds_in_use()
    fds_before = len(_fd_targets())
    writes = []
    real = sysfs.write
    monkeypatch.setattr(sysfs, "write", lambda path, value: (writes.append(str(path)), real(path, value)))
    trackers.probe_all()
    assert set(writes) <= {"/proc/self/clear_refs"}
    assert damon_sysfs.kdamonds_in_use() == damon_before
    targets = _fd_targets()
    assert len(targets) == fds_before
    assert not any("userfaultfd" in t or "hotbench-probe" in t for t in targets)
    assert "hotbench-probe" not in (procfs.read_text("/proc/self/maps") or "")


@pytest.mark.root
def test_without_root_every_root_mechanism_says_needs_root():
    """Probe in a forked child that dropped to nobody (kept dumpable so /proc/self stays its own)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            ctypes.CDLL(None, use_errno=True).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE
            probe.clear_cache()
            out = {k: [v.available, v.reason] for k, v in trackers.probe_all().items()}
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 1 << 16):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    results = json.loads(data)
    unprivileged_uffd = procfs.read_text("/proc/sys/vm/unprivileged_userfaultfd") == "1"
    if not unprivileged_uffd:
        for name in UFFD_MECHANISMS:
            assert results[name] == [False, results[name][1]] and "needs root" in results[name][1], name
    if os.path.isdir(damon_sysfs.DAMON_ADMIN):
        for name in ("damon-vaddr", "damon-paddr"):
            assert results[name] == [False, "needs root (DAMON sysfs is root-only)"]
    if os.path.exists(page_idle.PAGE_IDLE_BITMAP):
        assert "needs root" in results["idle-page"][1]
    if os.path.exists(mglru.LRU_GEN_ENABLED):
        assert "needs root" in results["mglru"][1]
    assert results["mprotect"][0] and results["shmem-zap"][0] == trackers.probe("shmem-zap").available


# ------------------------------------------------------------------ raw facts

def test_raw_facts_are_json_and_match_their_sources():
    facts = probe.raw_facts()
    json.dumps(facts)
    assert facts["uname"]["release"] == os.uname().release
    assert facts["root"] == (os.geteuid() == 0)
    assert facts["pagemap_scan_categories"] == pagemap.supported_categories()
    if os.geteuid() == 0:
        assert facts["uffd"]["features"] == _features()
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            text = f.read()
    except OSError:
        boot = Path(f"/boot/config-{os.uname().release}")
        text = boot.read_text() if boot.exists() else None
    if text is None:
        assert facts["kernel_config"] is None
    else:
        assert facts["kernel_config"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert facts["thp"] == procfs.thp_mode()
    assert facts["lru_gen_enabled"] == mglru.enabled()


# ------------------------------------------------------------------ ABI helpers, pure (fake trees)

def _tree(root: Path, files: dict) -> None:
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content + "\n")


def test_damon_fake_tree_busy_and_ops(tmp_path, monkeypatch):
    monkeypatch.setattr(damon_sysfs, "KDAMONDS", str(tmp_path))
    _tree(tmp_path, {"nr_kdamonds": "2", "0/state": "on", "0/pid": "77", "0/contexts/nr_contexts": "1",
                     "0/contexts/0/operations": "paddr", "0/contexts/0/avail_operations": "paddr",
                     "1/state": "off", "1/pid": "-1", "1/contexts/nr_contexts": "0"})
    found = damon_sysfs.kdamonds_in_use()
    assert [(k.index, k.state, k.pid, k.operations) for k in found] == [(0, "on", 77, ("paddr",)), (1, "off", None, ())]
    assert damon_sysfs.avail_operations(found) == {"paddr"}
    reason = damon_sysfs.busy_reason(found)
    assert reason.startswith("in use: kdamond 0 (paddr) is running, pid 77 (not ours); kdamond 1 (no context) exists, off")
    assert "hotbench never stops or reuses another kdamond" in reason
    assert damon_sysfs.busy_reason(found[1:], ours={1}) is None  # our own, stopped: free
    assert "in use" in damon_sysfs.busy_reason(found[:1], ours={0})  # our own but on: busy
    assert damon_sysfs.busy_reason([]) is None


@pytest.mark.root
def test_damon_free_when_no_kdamond_exists(tmp_path, monkeypatch):
    admin = tmp_path / "admin"
    _tree(admin, {"kdamonds/nr_kdamonds": "0"})
    monkeypatch.setattr(damon_sysfs, "DAMON_ADMIN", str(admin))
    monkeypatch.setattr(damon_sysfs, "KDAMONDS", str(admin / "kdamonds"))
    monkeypatch.setattr(procfs, "kernel_config", lambda: {"CONFIG_DAMON_PADDR": "y"})
    p = probe._damon("paddr")()
    assert p.available and "CONFIG_DAMON_PADDR=y" in p.reason and "no kdamond in use" in p.reason
    v = probe._damon("vaddr")()
    assert not v.available and "CONFIG_DAMON_VADDR is not set" in v.reason


def test_damon_ops_without_a_context_come_from_config(monkeypatch):
    monkeypatch.setattr(procfs, "kernel_config", lambda: {"CONFIG_DAMON_PADDR": "y", "CONFIG_DAMON_VADDR": "n"})
    assert damon_sysfs._operations_reason("paddr", []) is None
    assert "CONFIG_DAMON_VADDR is not set" in damon_sysfs._operations_reason("vaddr", [])
    monkeypatch.setattr(procfs, "kernel_config", lambda: None)
    assert damon_sysfs._operations_reason("vaddr", []).startswith("unknown whether 'vaddr'")


def test_config_reason_wording(monkeypatch):
    monkeypatch.setattr(procfs, "kernel_config", lambda: {"CONFIG_A": "y", "CONFIG_B": "n"})
    assert procfs.config_reason("no /x", "CONFIG_B") == "no /x: CONFIG_B is not set"
    assert procfs.config_reason("no /x", "CONFIG_C") == "no /x: CONFIG_C is not set"
    assert procfs.config_reason("no /x", "CONFIG_A") == "no /x although CONFIG_A=y"
    monkeypatch.setattr(procfs, "kernel_config", lambda: None)
    assert procfs.config_reason("no /x", "CONFIG_A") == "no /x (kernel config not readable)"


def test_mglru_enabled_parses_hex(tmp_path, monkeypatch):
    path = tmp_path / "enabled"
    path.write_text("0x0007\n")
    monkeypatch.setattr(mglru, "LRU_GEN_ENABLED", str(path))
    assert mglru.enabled() == 7
    path.write_text("garbage\n")
    assert mglru.enabled() is None
    monkeypatch.setattr(mglru, "LRU_GEN_ENABLED", str(tmp_path / "absent"))
    assert mglru.enabled() is None


def test_smaps_field_of_a_touched_page():
    size = pagemap.PAGE_SIZE
    from bench.kernel import libc
    # Three pages, the outer two PROT_NONE: the middle one is a VMA of its own, never merged
    # with a neighbouring anonymous mapping (a thread stack, another test's memory).
    base = libc.mmap(3 * size, libc.PROT_NONE, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS)
    addr = base + size
    try:
        libc.mprotect(addr, size, libc.PROT_READ | libc.PROT_WRITE)
        ctypes.memset(addr, 1, size)
        assert procfs.smaps_field(addr, "Rss") == size
        assert procfs.smaps_field(addr, "Referenced") == size
        assert procfs.smaps_field(addr, "NoSuchField") is None
    finally:
        libc.munmap(base, 3 * size)


# ------------------------------------------------------------------ CLI

def _run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, **kw)


def test_cli_json():
    proc = _run("probe", "--json")
    assert proc.stderr == ""
    assert proc.returncode in (0, 2)
    data = json.loads(proc.stdout)
    assert tuple(data) == EXPECTED
    for value in data.values():
        assert set(value) == {"available", "reason"}
        assert isinstance(value["available"], bool) and isinstance(value["reason"], str)
    assert proc.returncode == (0 if all(v["available"] for v in data.values()) else 2)


def test_cli_table():
    proc = _run("probe")
    assert proc.stderr == "" and proc.returncode in (0, 2)
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["mechanism", "status", "reason"]
    rows = lines[1:13]
    assert [r.split()[0] for r in rows] == list(EXPECTED)
    assert all(r.split()[1] in ("available", "unavailable") for r in rows)
    column = lines[0].index("status")
    assert all(r[column:].startswith(("available", "unavailable")) for r in rows)  # aligned
    assert lines[13] == "" and lines[14].startswith("kernel: Linux ") and len(lines) == 15
    assert proc.returncode == (2 if any(r.split()[1] == "unavailable" for r in rows) else 0)


def test_cli_probe_imports_neither_numba_nor_pandas():
    code = ("import sys, io, contextlib\nfrom bench.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): main(['probe', '--json'])\n"
            "print(sorted(m for m in ('numba', 'pandas', 'matplotlib') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
