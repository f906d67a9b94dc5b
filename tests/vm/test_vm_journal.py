"""The state journal against kernel state this host cannot give us to break (bench/journal.py):
in a Debian 7.3 guest, a hotbench killed while its kdamond runs, and while its MGLRU tracker
holds a scratch memory cgroup. The next command removes what provably is that run's, and a
kdamond hotbench did not create — started by hand where the killed run's had been — is left
exactly as it was. One boot; the guest script writes what it saw to a shared directory."""

from pathlib import Path

import pytest

from tests.vm.test_vm_boot import _tail, hotbench_vm

pytestmark = pytest.mark.vm

K = "/sys/kernel/mm/damon/admin/kdamonds"
GUEST_SCRIPT = r"""
out={out}
K={K}
snap() {{ for f in nr_kdamonds 0/state 0/pid 0/contexts/0/operations 0/contexts/0/targets/nr_targets; do
            echo "$f=$(cat $K/$f 2>/dev/null)"; done; }}
killed_run() {{  # $1 tracker, $2 out dir, $3 condition that says its state is in place
  hotbench run --trackers $1 --workloads uniform --size 16M --intervals 100000 --accesses 2000 --out $2 \
    > $2.log 2>&1 &
  pid=$!
  for i in $(seq 900); do eval "$3" && break; sleep 0.5; done
  sleep 2; kill -KILL $pid; sleep 1; echo $pid
}}

# 1. a kdamond hotbench did not create, where a killed run's kdamond was
killed_run damon-paddr $out/r1 '[ "$(cat $K/0/state 2>/dev/null)" = on ]' > $out/pid1
snap > $out/orphan1
echo off > $K/0/state; echo 0 > $K/nr_kdamonds             # someone takes the orphan away by hand
echo 1 > $K/nr_kdamonds; echo 1 > $K/0/contexts/nr_contexts  # ... and starts a kdamond of their own
echo paddr > $K/0/contexts/0/operations; echo 1 > $K/0/contexts/0/targets/nr_targets; echo on > $K/0/state
sleep 1; snap > $out/foreign_before
hotbench restore > $out/restore1.out 2> $out/restore1.err; echo $? > $out/restore1.rc
snap > $out/foreign_after
echo off > $K/0/state; echo 0 > $K/nr_kdamonds

# 2. the killed run's own kdamond: removed by the next command, which says so
killed_run damon-paddr $out/r2 '[ "$(cat $K/0/state 2>/dev/null)" = on ]' > $out/pid2
snap > $out/orphan2
hotbench probe > $out/probe2.out 2>&1
hotbench run --trackers uffd-wp --workloads uniform --size 8M --intervals 1 --accesses 1000 --out $out/r3 \
  > $out/next.out 2> $out/next.err; echo $? > $out/next.rc
snap > $out/after2

# 3. a killed MGLRU run's scratch memory cgroup (and the knobs it changed)
cat /sys/kernel/mm/lru_gen/enabled /sys/fs/cgroup/cgroup.subtree_control > $out/mglru_before
killed_run mglru $out/r4 'ls -d /sys/fs/cgroup/hotbench-mglru-* >/dev/null 2>&1' > $out/pid4
ls -d /sys/fs/cgroup/hotbench-mglru-* > $out/cgroup_orphan 2>&1
hotbench restore > $out/restore4.out 2> $out/restore4.err; echo $? > $out/restore4.rc
ls -d /sys/fs/cgroup/hotbench-mglru-* > $out/cgroup_after 2>&1
cat /sys/kernel/mm/lru_gen/enabled /sys/fs/cgroup/cgroup.subtree_control > $out/mglru_after
hotbench restore --list > $out/list_after
"""


def test_killed_kdamond_and_cgroup_in_a_guest(debian_kernel, tmp_path, say):
    out = tmp_path / "guest"
    out.mkdir()
    proc = hotbench_vm("--kernel", str(debian_kernel.image), "--share", str(out), "--timeout", "2400", "--",
                       "sh", "-c", GUEST_SCRIPT.format(out=out, K=K), timeout=2700)
    say(f"journal guest test: hotbench vm {proc.seconds:.1f} s")
    assert proc.returncode == 0, _tail(proc)

    def read(name):
        return (out / name).read_text()

    snap = lambda name: dict(line.split("=", 1) for line in read(name).splitlines())  # noqa: E731
    # 1. the foreign kdamond: not one of its files changed, and restore said why
    assert snap("orphan1")["0/state"] == "on" and snap("orphan1")["nr_kdamonds"] == "1"
    assert snap("foreign_before")["0/state"] == "on"
    assert snap("foreign_after") == snap("foreign_before")
    assert read("restore1.rc").strip() == "0", read("restore1.err")
    assert f"left kdamond 0 under {K} alone" in read("restore1.err") and "not the one hotbench created" in \
        read("restore1.err")
    # 2. the killed run's own kdamond: listed by probe, removed by the next run
    pid2 = read("pid2").strip()
    assert snap("orphan2")["0/state"] == "on"
    assert f"not restored: kdamond 0 (paddr) under {K}, left by pid {pid2}, which was killed" in read("probe2.out")
    assert read("next.rc").strip() == "0", read("next.err")
    assert f"hotbench: removed kdamond 0 under {K} (paddr): on -> removed, nr_kdamonds 1 -> 0 (left by pid " \
           f"{pid2}, which is gone)" in read("next.err").splitlines()
    assert snap("after2")["nr_kdamonds"] == "0"
    # 3. the scratch cgroup is gone, the knobs are as before
    assert "hotbench-mglru-" in read("cgroup_orphan"), read("cgroup_orphan")
    assert read("restore4.rc").strip() == "0", read("restore4.err")
    assert "removed memory cgroup /sys/fs/cgroup/hotbench-mglru-" in read("restore4.err")
    assert "No such file" in read("cgroup_after") and read("mglru_after") == read("mglru_before")
    assert read("list_after").startswith("nothing pending")


def test_sigterm_to_hotbench_vm_kills_qemu(debian_kernel):
    import signal
    import subprocess
    import sys
    import time

    from tests.vm.test_vm_boot import ROOT

    proc = subprocess.Popen([sys.executable, "-m", "bench", "vm", "--kernel", str(debian_kernel.image), "--no-warm",
                             "--timeout", "600", "--", "sh", "-c", "echo guest-up; sleep 600"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # the guest's console
        if "guest-up" in line:
            break
    qemu = [p for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and err.strip().splitlines()[-1] == "error: interrupted by SIGTERM", err
    time.sleep(1)
    assert qemu and not [p for p in qemu if Path(f"/proc/{p}").exists()], "QEMU outlived hotbench vm"
