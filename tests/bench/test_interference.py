"""``hotbench run --interfere`` (bench/interference.py) and ``--fault-around`` (bench/settings.py).

Pure: the registry and its one-line refusals, the memcg lookup and the aging command against
fake ``lru_gen`` / ``/proc/self/cgroup`` texts (and a fake kernel behind the debugfs write),
the runner's hook order, the fault-around values. Host: the tlb-flush round trip leaves the
arena as it was, and with the ``referenced`` tracker (clear_refs 1 + smaps, no TLB flush of
its own) it makes every re-touch count. VM (the kernels of ``hotbench vm``): mglru-age on a
live MGLRU, fault-around 4K vs 64K with ``shmem-zap``.

Measured (see the printed lines): on the 6.18 host TLB entries of the arena rarely survive
from one interval to the next (a KVM guest whose vCPU TLB is flushed often), so referenced is
already exact through the runner and tlb-flush changes nothing there; under QEMU TCG (soft
TLB kept until the guest flushes) referenced misses most re-touched pages from interval 1
on, and tlb-flush makes it exact. The host also locks debugfs down (kernel lockdown:
mounting works, every open is EPERM), so --fault-around is refused there in one line.
"""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import pytest

from bench import interference, results, settings
from bench.arena import Arena
from bench.errors import HotbenchError
from bench.kernel import cgroup, mglru, procfs, sysfs
from bench.runner import Cell, _interval, make_plan, run_cell
from bench.trackers import registry
from bench.trackers._base import Observation
from tests.conftest import skip_unless_in_vm  # a plain function; the repository root is on sys.path

ROOT = Path(__file__).resolve().parents[2]
TCG = os.environ.get("HOTBENCH_ACCEL") == "tcg"  # set by hotbench vm


def hotbench(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


# ------------------------------------------------------------------ registry (pure)

def test_registry_and_unknown_name():
    assert interference.names() == ["none", "tlb-flush", "mglru-age"]
    assert interference.get("tlb-flush").when == interference.AFTER_ARM
    assert interference.get("mglru-age").when == interference.AFTER_TOUCH
    with pytest.raises(HotbenchError, match="unknown interference 'tlbflush'; choose from: none, tlb-flush, "
                                            "mglru-age"):
        interference.get("tlbflush")


def test_tlb_flush_refuses_protection_trackers():
    flush = interference.get("tlb-flush")
    trackers = registry()
    for name in ("mprotect", "uffd-wp", "soft-dirty", "uffd-minor", "shmem-zap-minor", "rwp", "rwp-rfc"):
        if name in trackers:
            why = flush.refuses(trackers[name])
            assert why and "accessed-bit trackers" in why and name in why, (name, why)
    for name in ("referenced", "idle-page", "damon-vaddr", "damon-paddr", "mglru", "shmem-zap"):
        if name in trackers:
            assert flush.refuses(trackers[name]) is None, name
    assert interference.get("none").refuses(trackers["uffd-wp"]) is None


def test_mglru_age_unavailable_reasons(monkeypatch):
    age = interference.get("mglru-age")
    monkeypatch.setattr(mglru, "probe", lambda: None)
    for mask, words in ((0x0, "MGLRU is off"), (0x1, "page-table walk (0x0002) is off"), (0x5, "walk")):
        monkeypatch.setattr(mglru, "enabled", lambda mask=mask: mask)
        why = age.unavailable()
        assert words in why and "--mglru on" in why and "\n" not in why, why
    monkeypatch.setattr(mglru, "enabled", lambda: 0x7)
    assert age.unavailable() is None
    monkeypatch.setattr(mglru, "enabled", lambda: None)
    monkeypatch.setattr(mglru, "probe", lambda: "no /sys/kernel/mm/lru_gen: CONFIG_LRU_GEN is not set")
    assert "CONFIG_LRU_GEN" in age.unavailable()


# ------------------------------------------------------------------ mglru-age with a fake lru_gen (pure)

LRU_GEN = """\
memcg     1 /
 node     0
          0       8204          0         108
          1       8204          0         863
          2       8204       1098           0
memcg    12 /system.slice/ssh.service
 node     0
          4        120         10          2
          5         10         17          0
memcg    37 /user.slice/bench
 node     0
          5        120       4096          2
          6         10         17          0
 node     1
          2        900          3          0
          3          5          0          0
"""
V2_CGROUP = "0::/user.slice/bench\n"
V1_CGROUP = "12:pids:/\n4:memory:/user.slice/bench\n1:name=systemd:/init.scope\n0::/\n"


def test_own_memcg_path_v1_v2_and_no_hierarchy():
    assert interference.own_memcg_path(V2_CGROUP, cgroup.Hierarchy(cgroup.V2, "/sys/fs/cgroup")) == "/user.slice/bench"
    assert interference.own_memcg_path(V1_CGROUP, cgroup.Hierarchy(cgroup.V1, "/sys/fs/cgroup/memory")) == \
        "/user.slice/bench"
    with pytest.raises(OSError, match="no v1 memory cgroup listed"):
        interference.own_memcg_path(V2_CGROUP, cgroup.Hierarchy(cgroup.V1, "/sys/fs/cgroup/memory"))


def test_find_memcg_by_path():
    memcgs = mglru.parse_lru_gen(LRU_GEN)
    assert interference.find_memcg(memcgs, "/user.slice/bench").id == 37
    assert interference.find_memcg(memcgs, "/").id == 1
    with pytest.raises(OSError, match="'/nope' .* is not listed"):
        interference.find_memcg(memcgs, "/nope")
    # memory controller disabled: one memcg-less entry, path "" (cgroup.memory=nokmem... or CONFIG_MEMCG off)
    (none,) = mglru.parse_lru_gen("memcg     0 \n node     0\n          4      52341         -0        1200\n")
    assert interference.find_memcg([none], "/").id == 0
    # a dying memcg can still be listed under the same path: the last one is the live one
    twice = mglru.parse_lru_gen(LRU_GEN + "memcg    40 /user.slice/bench\n node     0\n          1 1 1 1\n")
    assert interference.find_memcg(twice, "/user.slice/bench").id == 40


def test_aging_commands_one_per_node_from_max_seq():
    ours = interference.find_memcg(mglru.parse_lru_gen(LRU_GEN), "/user.slice/bench")
    assert interference.aging_commands(ours) == {0: "+ 37 0 6 1 1", 1: "+ 37 1 3 1 1"}


class FakeLruGen:
    """A file standing in for debugfs lru_gen; a write of an aging command is applied like the
    kernel would (a new youngest generation), unless *refuse* names an errno."""

    def __init__(self, path: Path, text: str, refuse: int | None = None, create: bool = True):
        self.path, self.refuse, self.create = path, refuse, create
        self.written: list[str] = []
        path.write_text(text)

    def write(self, path, value):
        assert str(path) == str(self.path), path
        self.written.append(value)
        if self.refuse:
            raise OSError(self.refuse, os.strerror(self.refuse), str(path))
        if not self.create:
            return
        _, memcg_id, node, max_seq, _, _ = value.split()
        out, memcg, current = [], None, None
        lines = self.path.read_text().splitlines()
        for n, line in enumerate(lines):
            out.append(line)
            fields = line.split()
            if fields[0] == "memcg":
                memcg = fields[1]
            elif fields[0] == "node":
                current = fields[1]
            nxt = lines[n + 1].split()[0] if n + 1 < len(lines) else "memcg"
            if (memcg, current) == (memcg_id, node) and nxt in ("memcg", "node") and fields[0] not in ("memcg", "node"):
                out.append(f"          {int(max_seq) + 1}          0          0          0")
        self.path.write_text("\n".join(out) + "\n")


def test_mglru_age_writes_one_command_per_node(tmp_path, monkeypatch):
    fake = FakeLruGen(tmp_path / "lru_gen", LRU_GEN)
    monkeypatch.setattr(sysfs, "write", fake.write)
    age = interference.MglruAge(lru_gen=str(fake.path), memcg_path=lambda: "/user.slice/bench")
    done = age.hook(interference.AFTER_TOUCH, arena=None)
    assert fake.written == ["+ 37 0 6 1 1", "+ 37 1 3 1 1"]
    assert done.status == "ok", done.status
    assert done.info == {"memcg": "/user.slice/bench", "memcg_id": 37, "max_seq": {"0": [6, 7], "1": [3, 4]}}
    assert age.hook(interference.AFTER_ARM, arena=None) is None  # not its time


@pytest.mark.parametrize("refuse,create,words", [
    (errno.EINVAL, True, "node 0: Invalid argument; node 1: Invalid argument"),
    (None, False, "no new generation on node(s) 0, 1"),
])
def test_mglru_age_refused_degrades_the_interval(tmp_path, monkeypatch, refuse, create, words):
    fake = FakeLruGen(tmp_path / "lru_gen", LRU_GEN, refuse=refuse, create=create)
    monkeypatch.setattr(sysfs, "write", fake.write)
    done = interference.MglruAge(lru_gen=str(fake.path), memcg_path=lambda: "/user.slice/bench").hook(
        interference.AFTER_TOUCH, arena=None)
    assert done.status.startswith("interference mglru-age failed: ") and words in done.status, done.status
    assert "\n" not in done.status


# ------------------------------------------------------------------ the runner's hook (pure)

class _Recorder(interference.Interference):
    name, when, summary = "recorder", interference.AFTER_ARM, "test"

    def __init__(self, log, when, fail=False):
        self.log, self.when, self.fail = log, when, fail

    def apply(self, arena):
        self.log.append(f"interfere {self.when}")
        if self.fail:
            raise OSError(errno.EAGAIN, "busy", "/fake")
        return {"did": self.when}


class _Tracker:
    sees = "reads+writes"

    def __init__(self, log):
        self.log = log

    def arm(self):
        self.log.append("arm")

    def collect(self):
        self.log.append("collect")
        return Observation(wss_pages=3, status="ok")


class _Workload:
    def __init__(self, log):
        self.log = log

    def run_interval(self, view, i):
        self.log.append("touch")

    def truth(self, i):
        from workloads import Truth

        read = np.zeros(8, bool)
        read[:3] = True
        return Truth(read, np.zeros(8, bool))


@pytest.mark.parametrize("when,order", [
    (interference.AFTER_ARM, ["arm", "interfere after_arm", "touch", "collect"]),
    (interference.AFTER_TOUCH, ["arm", "touch", "interfere after_touch", "collect"]),
])
def test_interval_runs_the_interference_between_the_timed_calls(when, order):
    log = []
    arena = type("A", (), {"view": None, "npages": 8})()
    row, _, _ = _interval(_Tracker(log), _Workload(log), arena, 0, _Recorder(log, when))
    assert log == order
    assert row["status"] == "ok" and json.loads(row["extra"])["interference"] == {"did": when}
    assert row["interfere_ns"] > 0
    log.clear()
    row, _, _ = _interval(_Tracker(log), _Workload(log), arena, 0, _Recorder(log, when, fail=True))
    assert row["status"] == "interference recorder failed: [Errno 11] busy: '/fake'" and row["wss_est"] == 3


@pytest.mark.mechanism("referenced", "uffd-wp")
def test_plan_skips_refused_pairs_and_unavailable_interferences():
    plan = make_plan(["referenced", "uffd-wp"], ["uniform"], ["auto"], [4 << 20], 1, 1, 1,
                     interferences=["none", "tlb-flush", "mglru-age", "tlb-flush"])
    cells = {(c.tracker, c.interfere) for c in plan.cells}
    assert ("referenced", "none") in cells and ("referenced", "tlb-flush") in cells and ("uffd-wp", "none") in cells
    assert ("uffd-wp", "tlb-flush") not in cells and "uffd-wp + tlb-flush" in plan.skipped
    if interference.MglruAge.unavailable():
        assert plan.skipped["mglru-age"] == interference.MglruAge.unavailable()
        assert all(c.interfere != "mglru-age" for c in plan.cells)
    assert len(plan.cells) == len(cells)  # the repeated tlb-flush made no duplicate cells
    with pytest.raises(HotbenchError, match="unknown interference 'x'"):
        make_plan(["referenced"], ["uniform"], ["auto"], [4 << 20], 1, 1, 1, interferences=["x"])


# ------------------------------------------------------------------ --fault-around values (pure)

def test_fault_around_values():
    assert settings.value_of("fault-around", "4K") == "4096"
    assert settings.value_of("fault-around", "64K") == "65536"
    assert settings.value_of("fault-around", "16k") == "16384"
    assert settings.value_of("fault-around", "32768") == "32768"
    for bad in ("3K", "0", "2048", "abc", "-4K"):
        with pytest.raises(HotbenchError, match="power of two of at least one page"):
            settings.value_of("fault-around", bad)
    with pytest.raises(HotbenchError, match="--thp must be one of always, madvise, never"):
        settings.value_of("thp", "sometimes")


# ------------------------------------------------------------------ the CLI's refusals (pure)

@pytest.mark.parametrize("args,message", [
    (["--interfere", "none,tlbflush"], "unknown interference 'tlbflush'; choose from: none, tlb-flush, mglru-age"),
    (["--fault-around", "3K"], "--fault-around must be a power of two of at least one page"),
    (["--fault-around", "lots"], "--fault-around must be a power of two"),
    (["--interfere", "tlb-flush", "--mode", "concurrent"], "--interfere applies to lockstep runs only"),
])
def test_bad_values_are_one_line(tmp_path, args, message):
    out = hotbench("run", "--out", str(tmp_path), "--size", "4M", *args)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: ") and message in out.stderr, out.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.root
def test_refused_pair_alone_is_nothing_to_run(tmp_path):
    out = hotbench("run", "--out", str(tmp_path), "--trackers", "uffd-wp", "--interfere", "tlb-flush",
                   "--size", "4M", "--intervals", "1")
    assert out.returncode == 1, out.stderr
    assert "skip uffd-wp + tlb-flush: tlb-flush is a control for accessed-bit trackers" in out.stderr
    assert out.stderr.splitlines()[-1].startswith("error: nothing to run")


# ------------------------------------------------------------------ tlb-flush on the host

@numba.njit(nogil=True)
def _touch(view, pages, reps):
    acc = 0
    for _ in range(reps):
        for p in pages:
            acc += view[p * 4096]
    return acc


@numba.njit(nogil=True)
def _write(view, pages, value):
    for p in pages:
        view[p * 4096 + 1] = value


@pytest.mark.parametrize("backing", ["anon", "shmem"])
def test_tlb_flush_leaves_the_arena_as_it_was(backing):
    """Protections back to read-write, content intact, no fault on the next write of a page."""
    with Arena("4M", backing) as a:
        pages = np.arange(a.npages, dtype=np.int64)
        _write(a.view, pages, 7)
        flags = procfs.smaps_vma(a.addr)["VmFlags"]
        done = interference.TlbFlush().hook(interference.AFTER_ARM, a)
        assert done.status == "ok" and done.ns > 0
        assert procfs.smaps_vma(a.addr)["VmFlags"] == flags and procfs.smaps_vma(a.addr)["range"] == (a.addr, a.end)
        faults = procfs.minor_faults()
        _write(a.view, pages, 9)
        assert procfs.minor_faults() - faults == 0, "pages not writable again after the round trip"
        assert (a.view[1::4096] == 9).all()


@pytest.mark.mechanism("referenced")
def test_tlb_flush_makes_every_retouch_count(capsys):
    """The adversarial case of test_referenced (warm the TLB on N pages, clear_refs 1, re-touch):
    without a flush, pages whose translation survived are missed; with tlb-flush between the
    clear and the re-touch, none can be."""
    missed = {"none": {}, "tlb-flush": {}}
    fd = os.open("/proc/self/clear_refs", os.O_WRONLY | os.O_CLOEXEC)
    try:
        with Arena("16M", "anon") as a:
            for n in (16, 256, 1024):
                pages = np.arange(n, dtype=np.int64) * (a.npages // n)
                for name in missed:
                    counts = []
                    for _ in range(5):
                        _touch(a.view, pages, 100)
                        os.write(fd, b"1")
                        if name == "tlb-flush":
                            interference.TlbFlush().apply(a)
                        _touch(a.view, pages, 1)
                        counts.append(procfs.smaps_vma(a.addr)["Referenced"] // 4096)
                    missed[name][n] = [n - c for c in counts]
    finally:
        os.close(fd)
    with capsys.disabled():
        print(f"\nreferenced, pages missed re-touching N pages right after clear_refs 1{' (TCG)' if TCG else ''}: "
              + "; ".join(f"{k}: " + ", ".join(f"N={n}: {m}" for n, m in v.items()) for k, v in missed.items()))
    assert all(m >= 0 for v in missed["none"].values() for m in v)
    assert all(m == 0 for v in missed["tlb-flush"].values() for m in v), missed["tlb-flush"]


@pytest.mark.mechanism("referenced")
def test_tlb_flush_recall_through_the_runner(capsys):
    """hotcold with a 16-page hot set re-touched every interval: recall (referenced is aggregate
    and never over-reports, so wss_est / wss_true) with tlb-flush >= without, and exact with it."""
    spec = "hotcold:hot=0.004,p=0.95"
    recall = {}
    for name in ("none", "tlb-flush"):
        df = pd.DataFrame(run_cell(Cell("referenced", spec, "anon", 16 << 20, 5, 0, 7, accesses=20_000,
                                        interfere=name)))
        assert (df["status"] == "ok").all() and (df["interfere"] == name).all(), df["status"].tolist()
        assert (df["wss_est"] <= df["wss_true"]).all()
        recall[name] = (df["wss_est"] / df["wss_true"]).round(4).tolist()
        if name == "tlb-flush":
            assert (df["wss_est"] == df["wss_true"]).all(), (df["wss_est"].tolist(), df["wss_true"].tolist())
            assert (df["interfere_ns"] > 0).all() and (df["minor_faults"] == 0).all()
    with capsys.disabled():
        print(f"\nreferenced x {spec}{' (TCG)' if TCG else ''}, recall per interval: " +
              "; ".join(f"{k}: {v}" for k, v in recall.items()))
    assert sum(recall["tlb-flush"][1:]) >= sum(recall["none"][1:])


# ------------------------------------------------------------------ mglru-age, live (VMs with MGLRU)

@pytest.mark.mechanism("mglru")
def test_mglru_age_live(capsys):
    """With MGLRU on, one aging per interval of the memcg this process is in: a new generation
    each time, the memcg found is ours; then referenced and (where the kernel has it) idle-page
    with and without it."""
    with settings.applied({"mglru": "on"}):
        assert interference.MglruAge.unavailable() is None
        path = interference.own_memcg_path()
        done = interference.MglruAge().hook(interference.AFTER_TOUCH, arena=None)
        assert done.status == "ok", done.status
        assert done.info["memcg"] == path and all(new > old for old, new in done.info["max_seq"].values())
        lines = []
        for tracker in ("referenced", "idle-page"):
            if registry()[tracker].unavailable("anon"):
                continue
            recall = {}
            for name in ("none", "mglru-age"):
                df = pd.DataFrame(run_cell(Cell(tracker, "hotcold", "anon", 8 << 20, 3, 0, 7, accesses=5_000,
                                                interfere=name)))
                assert (df["status"] == "ok").all(), df["status"].tolist()
                if name == "mglru-age":
                    aged = [json.loads(e)["interference"] for e in df["extra"]]
                    assert all(a["memcg"] == path for a in aged)
                    seqs = [a["max_seq"]["0"] for a in aged]
                    assert all(new > old for old, new in seqs) and seqs[1][0] >= seqs[0][1], seqs
                if "tp" in df:
                    recall[name] = (df["tp"] / (df["tp"] + df["fn"])).round(4).tolist()
                else:
                    recall[name] = (df["wss_est"] / df["wss_true"]).round(4).tolist()
            lines.append(f"{tracker}: " + "; ".join(f"{k}: {v}" for k, v in recall.items()))
    with capsys.disabled():
        print(f"\nmglru-age{' (TCG)' if TCG else ''}, recall per interval (memcg {path}): " + " | ".join(lines))


# ------------------------------------------------------------------ --fault-around (debugfs)

def _debugfs_state():
    return mglru.debugfs_mounted(), sysfs.read(settings.FAULT_AROUND_BYTES)


@pytest.mark.root
def test_fault_around_restored_and_debugfs_as_found(tmp_path):
    before = _debugfs_state()
    out = hotbench("run", "--out", str(tmp_path), "--trackers", "shmem-zap", "--workloads", "uniform",
                   "--write-ratio", "0", "--size", "4M", "--intervals", "1", "--accesses", "500",
                   "--fault-around", "4K")
    assert _debugfs_state() == before, "debugfs mount or fault_around_bytes not as found"
    if out.returncode == 1 and "cannot read /sys/kernel/debug/fault_around_bytes" in out.stderr:
        assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: "), out.stderr
        skip_unless_in_vm(f"debugfs unusable here, refused in one line: {out.stderr.strip()}")
    assert out.returncode == 0, out.stderr
    (run_dir,) = results.run_dirs(tmp_path)
    record = json.loads((run_dir / "manifest.json").read_text())["settings"]["fault-around"]
    assert record["set"] == "4K" and record["now"] == "4096" and record["path"] == settings.FAULT_AROUND_BYTES
    assert record["debugfs"] == ("already mounted" if before[0] else "mounted for the run")


@pytest.mark.mechanism("shmem-zap")
def test_fault_around_precision_of_shmem_zap(capsys):
    """Read-only uniform accesses: with fault-around 64K each read fault maps up to 16 pages
    (false positives), with 4K exactly one."""
    precision = {}
    try:
        for size in ("4K", "64K"):
            with settings.applied({"fault-around": size}) as record:
                df = pd.DataFrame(run_cell(Cell("shmem-zap", "uniform", "shmem", 16 << 20, 3, 0, 7, accesses=1_000,
                                                write_ratio=0.0)))
            assert (df["status"] == "ok").all() and (df["truth_written"] == 0).all()
            precision[size] = float(df["tp"].sum() / (df["tp"].sum() + df["fp"].sum()))
            assert df["fn"].sum() == 0 and record["fault-around"]["now"] == settings.value_of("fault-around", size)
    except HotbenchError as e:
        if "cannot read" in str(e):
            skip_unless_in_vm(str(e))
        raise
    with capsys.disabled():
        print(f"\nshmem-zap precision, read-only uniform{' (TCG)' if TCG else ''}: {precision}")
    assert precision["4K"] >= precision["64K"] and precision["4K"] == 1.0


def test_tlb_flush_that_cannot_restore_write_access_ends_the_cell(monkeypatch):
    """A half-done round trip would leave the arena read-only and the workload's next write
    would SIGSEGV: that failure must end the cell (an OSError run_cell records), not degrade
    one interval."""
    from bench.kernel import libc

    calls = []

    def mprotect(addr, size, prot):
        calls.append(prot)
        if prot & libc.PROT_WRITE:
            raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(libc, "mprotect", mprotect)

    class _Arena:
        addr, size = 1 << 30, 1 << 20

    with pytest.raises(interference.ArenaLeftChanged, match="left the arena read-only"):
        interference.get("tlb-flush")().hook("after_arm", _Arena())
    assert calls == [libc.PROT_READ, libc.PROT_READ | libc.PROT_WRITE]
