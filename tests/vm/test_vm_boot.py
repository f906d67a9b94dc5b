"""Boot real kernels under QEMU (``hotbench vm``): Debian's 7.3 and linux-source-7.3 built with the
project's fragment. Inside each: ``hotbench probe --json`` must report what the kernel's config
enables, and a tiny ``hotbench run`` must leave results on the host. Then the ways a VM ends:
the command's status passed through, a panic before the command started (booted again) and
after (not), a timeout, an init that cannot mount the host."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

ROOT = Path(__file__).resolve().parents[2]

# What each kernel's config is known to enable (issue 3), checked against the probe inside.
DEBIAN_73 = ["rwp", "mglru", "soft-dirty", "damon-vaddr", "damon-paddr", "uffd-wp"]
BUILT_73 = DEBIAN_73 + ["idle-page"]

# One boot per kernel: probe, then a tiny run; /proc/uptime stamps time each stage.
GUEST_SCRIPT = """
out={out}
cut -d' ' -f1 /proc/uptime > $out/t0
hotbench probe --json > $out/probe.json; echo $? > $out/probe.rc
cut -d' ' -f1 /proc/uptime > $out/t1
hotbench run --trackers uffd-wp --workloads uniform --size 16M --intervals 2 --accesses 2000 --out $out/results
rc=$?
cut -d' ' -f1 /proc/uptime > $out/t2
exit $rc
"""


def hotbench_vm(*args, timeout=1800):
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "bench", "vm", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    proc.seconds = time.monotonic() - start
    return proc


def _tail(proc, n=40):
    return "\n".join((proc.stdout + proc.stderr).splitlines()[-n:])


def boot_probe_and_run(kernel, expected, out: Path, say):
    out.mkdir(parents=True, exist_ok=True)
    proc = hotbench_vm("--kernel", str(kernel.image), "--share", str(out), "--require", ",".join(expected),
                       "--timeout", "1500", "--", "sh", "-c", GUEST_SCRIPT.format(out=out))
    stamps = {}
    for name in ("t0", "t1", "t2"):
        try:
            stamps[name] = float((out / name).read_text())
        except (OSError, ValueError):
            pass
    say(f"{kernel.release}: hotbench vm {proc.seconds:.1f} s in all; guest uptime at command "
        f"{stamps.get('t0', float('nan')):.1f} s, probe {stamps.get('t1', 0) - stamps.get('t0', 0):.1f} s, "
        f"tiny run {stamps.get('t2', 0) - stamps.get('t1', 0):.1f} s")
    return proc


@pytest.fixture(scope="module")
def debian_boot(debian_kernel, tmp_path_factory, say):
    out = tmp_path_factory.mktemp("vm-debian")
    return debian_kernel, boot_probe_and_run(debian_kernel, DEBIAN_73, out, say), out


@pytest.fixture(scope="module")
def built_boot(built_kernel, tmp_path_factory, say):
    out = tmp_path_factory.mktemp("vm-built")
    return built_kernel, boot_probe_and_run(built_kernel, BUILT_73, out, say), out


def check_probe(boot, expected):
    kernel, proc, out = boot
    assert (out / "probe.json").exists(), f"no probe output from the guest:\n{_tail(proc)}"
    probe = json.loads((out / "probe.json").read_text())
    missing = {m: probe.get(m, {}).get("reason", "not probed") for m in expected
               if not probe.get(m, {}).get("available")}
    assert not missing, f"{kernel.release}: config enables these but the probe says unavailable: {missing}"
    # Everything the config enables must be found by the probe (rwp-rfc is never in a config).
    for mechanism in kernel.mechanisms():
        assert probe[mechanism]["available"], (mechanism, probe[mechanism]["reason"])


def check_run(boot):
    from bench import vm

    kernel, proc, out = boot
    assert proc.returncode == 0, f"guest run failed (exit {proc.returncode}):\n{_tail(proc)}"
    from bench import results

    manifests = [d / "manifest.json" for d in results.run_dirs(out / "results")]
    assert len(manifests) == 1, f"results did not reach the host: {list(out.rglob('*'))}"
    env = json.loads(manifests[0].read_text())["environment"]
    assert env["accel"] == vm.choose_accel("auto")[0]  # "tcg" on these machines: /dev/kvm cannot run guests
    assert env["kernel_release"] == kernel.release
    boots = env["vm_boot"]  # which boot ran the command, and why the ones before it died
    assert boots["attempts"] >= 1 and len(boots["earlier_failures"]) == boots["attempts"] - 1, boots
    assert (manifests[0].parent / "samples.parquet").stat().st_size > 0


def test_debian_73_probe(debian_boot):
    check_probe(debian_boot, DEBIAN_73)


def test_debian_73_tiny_run_results_on_host(debian_boot):
    check_run(debian_boot)


def test_built_73_probe(built_boot):
    check_probe(built_boot, BUILT_73)


def test_built_73_tiny_run_results_on_host(built_boot):
    check_run(built_boot)


def test_built_73_config_has_every_fragment_option(built_kernel):
    from bench.vm.kernels import kconfig

    verdict = kconfig.verify(kconfig.parse_fragment(kconfig.fragment_text()), kconfig.read_config(built_kernel.config),
                             None)
    assert not verdict.dropped, [o.option for o in verdict.dropped]
    assert built_kernel.release.endswith("-hotbench")


# ---------------------------------------------------------------- how a VM ends (cheap: no Python in the guest)

def test_guest_status_is_returned(debian_kernel):
    proc = hotbench_vm("--kernel", str(debian_kernel.image), "--no-warm", "--timeout", "300", "--",
                       "sh", "-c", "uname -r; exit 7")
    assert proc.returncode == 7, _tail(proc)
    assert debian_kernel.release in proc.stdout
    assert "guest command exited 7" in proc.stderr


def _retries(proc):
    return [line for line in proc.stderr.splitlines() if "booting again" in line]


def test_kernel_panic_after_the_command_started_is_vm_lost_not_retried(debian_kernel):
    proc = hotbench_vm("--kernel", str(debian_kernel.image), "--no-warm", "--timeout", "300", "--",
                       "sh", "-c", "echo c > /proc/sysrq-trigger; sleep 60")
    assert proc.returncode == 125, _tail(proc)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: VM lost after "), proc.stderr
    assert errors[0].endswith("s: kernel panic: sysrq triggered crash"), proc.stderr
    # a boot that died before the command (the emulator) may have been retried; the crash was not
    assert not any("sysrq" in r for r in _retries(proc))


def test_panic_before_init_is_booted_again(debian_kernel):
    # An initramfs without the rdinit= program makes the kernel mount root= instead; there is
    # none, so it panics before any init runs (init/do_mounts.c), on every boot.
    proc = hotbench_vm("--kernel", str(debian_kernel.image), "--no-warm", "--timeout", "300", "--boot-retries", "1",
                       "--append", "rdinit=/nonexistent", "--", "true")
    assert proc.returncode == 125, _tail(proc)
    why = "kernel panic: VFS: Unable to mount root fs on unknown-block(0,0)"
    retries = _retries(proc)
    assert len(retries) == 1 and retries[0].startswith("hotbench vm: boot 1 of 2 died after "), proc.stderr
    assert retries[0].endswith(f"before the command started: {why}; booting again"), proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: VM lost: 2 boots died before the command started, each the same way: {why}")


def test_timeout_kills_qemu(debian_kernel):
    proc = hotbench_vm("--kernel", str(debian_kernel.image), "--no-warm", "--timeout", "25", "--", "sleep", "600")
    assert proc.returncode == 124, _tail(proc)
    assert proc.stderr.strip().splitlines()[-1] == "error: VM timed out after 25 s; QEMU killed"
    assert proc.seconds < 120


def test_kernel_without_9p_is_one_clear_line(debian_kernel, tmp_path):
    empty = tmp_path / "lib" / "modules" / debian_kernel.release
    (empty / "kernel").mkdir(parents=True)  # a module tree without 9p: the guest cannot mount the host
    # (an oops under TCG before the init ran boots again by itself: hotbench vm --boot-retries)
    proc = hotbench_vm("--kernel", str(debian_kernel.image), "--modules", str(empty), "--no-warm",
                       "--timeout", "300", "--", "true")
    assert proc.returncode == 125, _tail(proc)
    assert "error: VM lost" in proc.stderr and "cannot mount the host root over 9p" in proc.stderr, _tail(proc)
    assert not any("guest init failed" in r for r in _retries(proc))  # the same every time: never retried


# ---------------------------------------------------------------- two NUMA nodes: balancing scans there

# Fill 64 MiB while on CPU 0 (node 0), then touch one byte per page from CPU 1 (node 1) until
# /proc/vmstat numa_pte_updates grows (and at least MIN seconds passed). The pages must be remote:
# for a single-threaded task the scanner leaves PTEs of pages already on its node alone
# (mm/mprotect.c, prot_numa). Balancing first scans a task after ~1 s of its CPU time
# (scan_delay_ms), then 256 MiB per period; under TCG on a busy host that can take longer,
# hence the deadline.
NUMA_TOUCH = """
import json, os, sys, time

def vmstat(name):
    return next(int(line.split()[1]) for line in open("/proc/vmstat") if line.startswith(name + " "))

out, min_seconds, deadline = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
os.sched_setaffinity(0, {0})
buf = bytearray(b"x") * (64 << 20)  # written here: the pages are on node 0
os.sched_setaffinity(0, {1})
pages = len(range(0, len(buf), 4096))
before, migrated, start, passes = vmstat("numa_pte_updates"), vmstat("numa_pages_migrated"), time.monotonic(), 0
while time.monotonic() - start < deadline:
    passes += 1
    buf[::4096] = bytes([passes & 255]) * pages
    if passes % 16 == 0 and time.monotonic() - start >= min_seconds and vmstat("numa_pte_updates") > before:
        break
json.dump({"before": before, "after": vmstat("numa_pte_updates"), "seconds": time.monotonic() - start,
           "passes": passes, "migrated": vmstat("numa_pages_migrated") - migrated}, open(out, "w"))
"""

NUMA_SCRIPT = """
out={out}
ls /sys/devices/system/node > $out/nodes
python3 -c 'from bench.environment import describe; print(describe()["numa_nodes"])' > $out/manifest_nodes
echo 1 > /proc/sys/kernel/numa_balancing || exit 3
python3 $out/touch.py $out/touch.json 3 60
"""


def test_debian_73_two_numa_nodes_balancing_scans(debian_kernel, tmp_path, say):
    (tmp_path / "touch.py").write_text(NUMA_TOUCH)
    proc = hotbench_vm("--kernel", str(debian_kernel.image), "--no-warm", "--numa-nodes", "2", "--mem", "2G",
                       "--cpus", "2", "--share", str(tmp_path), "--timeout", "600", "--",
                       "sh", "-c", NUMA_SCRIPT.format(out=tmp_path))
    assert proc.returncode == 0, _tail(proc)
    assert "over NUMA nodes 0: 1024M/0 CPU, 1: 1024M/1 CPU" in proc.stderr
    nodes = (tmp_path / "nodes").read_text().split()
    assert "node0" in nodes and "node1" in nodes, nodes
    assert (tmp_path / "manifest_nodes").read_text().strip() == "2"  # what a manifest written there records
    touch = json.loads((tmp_path / "touch.json").read_text())
    say(f"two-node guest: numa_pte_updates {touch['before']} -> {touch['after']} in {touch['seconds']:.1f} s "
        f"({touch['passes']} passes over 64 MiB, {touch['migrated']} pages migrated); "
        f"hotbench vm {proc.seconds:.1f} s in all")
    assert touch["after"] > touch["before"], f"NUMA balancing never scanned the task: {touch}"
