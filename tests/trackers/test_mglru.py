"""mglru: the lru_gen parser, the aging command and the scratch memcg's writes everywhere;
on a kernel with MGLRU (the Debian 7.3 kernel in 'hotbench vm'), WSS through the runner
and a kernel left as found (lru_gen/enabled, memcgs, our cgroup) after a normal stop, an
exception inside an interval, and SIGINT of a 'hotbench run'."""

import json
import os

import pytest

from bench.kernel import cgroup, mglru, sysfs
from tests.trackers._lockstep import run
from tests.trackers._sigint import sigint_run

live = pytest.mark.mechanism("mglru")

# Captured in 'hotbench vm' on Debian 7.3.4 (7.3.4+deb13-amd64), cgroup v2, no memcg yet.
SAMPLE_7_3 = """\
memcg 1 /
 node     0
          0       8204          0         108 
          1       8204          0         863 
          2       8204       1098           0 
          3       8204          0           0 
"""

# The same shape with a child memcg on two nodes, as newer kernels print it (memcg %llu).
SAMPLE_TWO_NODES = SAMPLE_7_3 + """\
memcg 37 /hotbench-mglru-123-9
 node     0
          5        120       4096          2 
          6         10         17          0 
 node     1
          2        900          3          0 
          3          5          0          0 
"""

# Older kernels (6.1): '%5hu' ids, '-0' for a generation below one type's min_seq.
SAMPLE_6_1 = """\
memcg     0 
 node     0
          4      52341         -0        1200 
          5       1000        300          44 
"""

# lru_gen_full: marks after counts and statistics lines in between.
SAMPLE_FULL = """\
memcg     1 /
 node     0
          1      13000         12x         40 
            0          0r          0e          0p          1r          0e          0p
                     0          0a          0f          0s
          2       1200        100         50 
            0          0r          0e          0p          1r          0e          0p
"""


def test_parse_captured_7_3_sample():
    (root,) = mglru.parse_lru_gen(SAMPLE_7_3)
    assert root.id == 1 and root.path == "/" and list(root.nodes) == [0]
    assert root.nodes[0][2] == mglru.Generation(2, 8204, 1098, 0)
    assert root.max_seq(0) == 3


def test_parse_two_memcgs_two_nodes():
    memcgs = mglru.parse_lru_gen(SAMPLE_TWO_NODES)
    assert [(m.id, m.path) for m in memcgs] == [(1, "/"), (37, "/hotbench-mglru-123-9")]
    ours = memcgs[1]
    assert {n: ours.max_seq(n) for n in ours.nodes} == {0: 6, 1: 3}
    assert sum(g.anon + g.file for g in ours.nodes[0] if g.seq >= 5) == 4096 + 2 + 17


def test_parse_older_and_full_formats():
    (old,) = mglru.parse_lru_gen(SAMPLE_6_1)
    assert old.id == 0 and old.path == "" and old.nodes[0][0] == mglru.Generation(4, 52341, 0, 1200)
    (full,) = mglru.parse_lru_gen(SAMPLE_FULL)
    assert full.nodes[0] == [mglru.Generation(1, 13000, 12, 40), mglru.Generation(2, 1200, 100, 50)]


def test_parse_rejects_generations_outside_a_node():
    with pytest.raises(ValueError, match="outside a node"):
        mglru.parse_lru_gen("memcg 1 /\n  3 10 1 1\n")


def test_aging_command_and_write(tmp_path):
    assert mglru.aging_command(37, 1, 6) == "+ 37 1 6 1 1"
    fake = tmp_path / "lru_gen"
    fake.write_text("")
    mglru.age(37, 0, 5, path=str(fake))
    assert fake.read_text() == "+ 37 0 5 1 1"


# ------------------------------------------------------------------ cgroup module, pure

HOST_MOUNTS = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""
GUEST_MOUNTS = "proc /proc proc rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw,relatime 0 0\n"


def test_memory_hierarchy_v1_wins_over_an_empty_cgroup2():
    h = cgroup.parse_mounts(HOST_MOUNTS, controllers_of=lambda m: "")
    assert h == cgroup.Hierarchy(cgroup.V1, "/sys/fs/cgroup/memory")
    g = cgroup.parse_mounts(GUEST_MOUNTS, controllers_of=lambda m: "cpuset cpu io memory pids")
    assert g == cgroup.Hierarchy(cgroup.V2, "/sys/fs/cgroup")
    assert cgroup.parse_mounts(GUEST_MOUNTS, controllers_of=lambda m: "cpu io") is None


def test_proc_cgroup_paths():
    v1 = "9:name=systemd:/\n4:memory:/process_api/abc\n0::/\n"
    assert cgroup.parse_proc_cgroup(v1, cgroup.V1) == "/process_api/abc"
    assert cgroup.parse_proc_cgroup(v1, cgroup.V2) == "/"
    assert cgroup.parse_proc_cgroup("3:cpu,memory:/a\n", cgroup.V1) == "/a"
    assert cgroup.parse_proc_cgroup("0::/user.slice/x\n", cgroup.V1) is None


class _FakeCgroupFs:
    """A cgroup tree in a tmp dir: mkdir adds cgroup.procs, rmdir removes it; writes are logged."""

    def __init__(self, root, monkeypatch, subtree=""):
        self.root, self.log = root, []
        (root / "cgroup.procs").write_text(f"{os.getpid()}\n")
        (root / "cgroup.subtree_control").write_text(subtree)
        real_write, real_mkdir, real_rmdir = sysfs.write, os.mkdir, os.rmdir

        def write(path, value):
            self.log.append((os.path.relpath(str(path), root), str(value)))
            real_write(path, value)

        def mkdir(path, mode=0o777):
            real_mkdir(path, mode)
            (root / path / "cgroup.procs").write_text("")

        def rmdir(path):
            os.unlink(os.path.join(path, "cgroup.procs"))
            real_rmdir(path)

        monkeypatch.setattr(sysfs, "write", write)
        monkeypatch.setattr(cgroup.os, "mkdir", mkdir)
        monkeypatch.setattr(cgroup.os, "rmdir", rmdir)


def test_scratch_memcg_v2_from_the_root(tmp_path, monkeypatch):
    fs = _FakeCgroupFs(tmp_path, monkeypatch, subtree="cpu io")
    monkeypatch.setattr(cgroup, "current_path", lambda h, pid="self": "/")
    cg = cgroup.ScratchMemcg("hotbench-mglru", cgroup.Hierarchy(cgroup.V2, str(tmp_path)))
    path = cg.create()
    name = path.lstrip("/")
    assert path.startswith("/hotbench-mglru-") and (tmp_path / name).is_dir()
    cg.enter()
    cg.close()
    cg.close()  # idempotent
    pid = str(os.getpid())
    assert fs.log == [("cgroup.subtree_control", "+memory"), (f"{name}/cgroup.procs", pid),
                      ("cgroup.procs", pid), ("cgroup.subtree_control", "-memory")]
    assert not (tmp_path / name).exists()


def test_scratch_memcg_v2_sibling_when_memory_is_delegated(tmp_path, monkeypatch):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "cgroup.subtree_control").write_text("memory pids")
    (tmp_path / "a" / "b" / "cgroup.procs").write_text("")
    fs = _FakeCgroupFs(tmp_path, monkeypatch)
    monkeypatch.setattr(cgroup, "current_path", lambda h, pid="self": "/a/b")
    cg = cgroup.ScratchMemcg("x", cgroup.Hierarchy(cgroup.V2, str(tmp_path)))
    assert cg.create().startswith("/a/x-")
    cg.enter()
    cg.close()
    assert [w for w in fs.log if "subtree_control" in w[0]] == []  # parent already delegates memory
    assert fs.log[-1] == ("a/b/cgroup.procs", str(os.getpid()))


def test_scratch_memcg_v1_is_a_child(tmp_path, monkeypatch):
    (tmp_path / "process_api").mkdir()
    (tmp_path / "process_api" / "cgroup.procs").write_text("")
    fs = _FakeCgroupFs(tmp_path, monkeypatch)
    monkeypatch.setattr(cgroup, "current_path", lambda h, pid="self": "/process_api")
    cg = cgroup.ScratchMemcg("x", cgroup.Hierarchy(cgroup.V1, str(tmp_path)))
    assert cg.create().startswith("/process_api/x-")
    cg.close()  # never entered: only the rmdir
    assert fs.log == [] and not any(p.name.startswith("x-") for p in (tmp_path / "process_api").iterdir())


# ------------------------------------------------------------------ live (a kernel with MGLRU)

def _hotbench_memcgs() -> list[str]:
    h = cgroup.memory_hierarchy()
    found = []
    for dirpath, dirs, _ in os.walk(h.mount):
        found += [os.path.join(dirpath, d) for d in dirs if d.startswith("hotbench-mglru")]
    return found


def _kernel_state() -> dict:
    h = cgroup.memory_hierarchy()
    return {"enabled": mglru.enabled(), "memcgs": _hotbench_memcgs(), "cgroup": cgroup.current_path(h),
            "subtree": sysfs.read(os.path.join(h.mount, "cgroup.subtree_control")) if h.version == cgroup.V2 else None}


# Bounds measured in 'hotbench vm' (Debian 7.3.4, TCG, 2 vCPUs, 16 MiB arena, 5 intervals of 3000 and
# 30000 accesses, hotcold/zipf/uniform/phase/scan): the first interval after the memcg move was exact
# in all 10 cells, and no interval ever over-reported. Later intervals under-report re-touched pages
# (-29% .. -100%): MGLRU clears Accessed bits without a TLB flush, so an access through a translation
# still cached in the TLB sets no bit (verified: an mprotect round trip before the touches restores
# full detection). So: first interval within 2%, every interval at most 2% (+16 pages the interpreter
# may allocate in the memcg) over the truth, and no lower bound after the first interval.
FIRST_INTERVAL_TOLERANCE = 0.02
MAX_OVER = 0.02
SLACK_PAGES = 16


@live
@pytest.mark.parametrize("pattern", ["hotcold", "zipf", "uniform", "phase"])
def test_wss_within_bounds(pattern):
    before = _kernel_state()
    df = run("mglru", pattern, intervals=4, accesses=3000)
    after = _kernel_state()
    err = (df["wss_est"] - df["wss_true"]) / df["wss_true"]
    print(f"\nmglru {pattern}: wss_true {df.wss_true.tolist()} wss_est {df.wss_est.tolist()} "
          f"rel err {[round(x, 3) for x in err]} collect_ms {list((df.collect_ns / 1e6).round(1))} "
          f"collect_ms_per_gib {list((df.collect_ns / 1e6 / (df.size_bytes / 2**30)).round(0))}")
    assert after == before
    first = df.iloc[0]
    assert abs(first.wss_est - first.wss_true) <= FIRST_INTERVAL_TOLERANCE * first.wss_true + SLACK_PAGES
    assert (df["wss_est"] <= df["wss_true"] * (1 + MAX_OVER) + SLACK_PAGES).all()
    assert (df["wss_est"] >= 0).all()


@live
def test_aging_with_mglru_switched_off_is_switched_on_then_restored():
    from bench import settings

    with settings.applied({"mglru": "off"}):
        assert not mglru.enabled() & 1
        df = run("mglru", "hotcold", intervals=2, accesses=2000)
        assert mglru.enabled() == 0
    extra = [json.loads(e) for e in df["extra"]]
    assert all(e["lru_gen_enabled"] & 3 == 3 for e in extra)


@live
def test_stop_after_normal_stop_and_exception(monkeypatch):
    from bench.arena import Arena
    from bench.runner import Cell, run_cell
    from bench.trackers.mglru import MglruTracker
    from tests.trackers._leftovers import failing_workloads

    before = _kernel_state()
    with Arena("4M", "anon") as a:
        t = MglruTracker()
        t.start(a)
        assert _hotbench_memcgs() and cgroup.current_path(cgroup.memory_hierarchy()) != before["cgroup"]
        t.arm()
        a.view[::4096] = 1
        obs = t.collect()
        assert obs.status == "ok" and obs.wss_pages >= a.npages
        t.stop()
        t.stop()
    assert _kernel_state() == before
    failing_workloads(monkeypatch, at=1)
    with pytest.raises(RuntimeError, match="workload failed"):
        run_cell(Cell("mglru", "uniform", "anon", 4 << 20, 3, 0, 1, accesses=500))
    assert _kernel_state() == before


@live
def test_sigint_of_a_run_leaves_no_memcg(tmp_path):
    before = _kernel_state()
    status, err, seen = sigint_run(tmp_path, "mglru", lambda pid: bool(_hotbench_memcgs()))
    assert seen, "the run never created its memcg"
    assert status == 130 and "Traceback" not in err, err
    assert _kernel_state() == before


@live
def test_missed_retouches_come_back_after_a_tlb_flush():
    """The bound's explanation, checked: pages re-touched after an aging are partly missed, and all
    seen when the arena's TLB entries were flushed (mprotect round trip) before the touches."""
    from bench.arena import Arena
    from bench.kernel import libc

    memcg = cgroup.ScratchMemcg("hotbench-mglru-tlb")
    memcg.create()
    try:
        memcg.enter()
        with Arena("4M", "anon") as a:
            a.repopulate()

            def ours():
                (m,) = [x for x in mglru.read_lru_gen() if x.path == memcg.path]
                return m

            def age():
                m = ours()
                mglru.age(m.id, 0, m.max_seq(0))
                return ours().max_seq(0)

            hot = a.view[: 256 * 4096: 4096]
            seen = []
            for flush in (False, False, True):
                since = age()
                if flush:
                    libc.mprotect(a.addr, a.size, libc.PROT_READ)
                    libc.mprotect(a.addr, a.size, libc.PROT_READ | libc.PROT_WRITE)
                int(hot.sum())
                age()
                seen.append(sum(g.anon + g.file for g in ours().nodes[0] if g.seq >= since))
    finally:
        memcg.close()
    print(f"\nmglru: 256 hot pages seen after first touch, re-touch, re-touch after TLB flush: {seen}")
    assert seen[0] >= 250 and seen[2] >= 250
