"""What a result depends on besides the code: kernel, CPU, memory, and the knobs that change MM behaviour."""

from __future__ import annotations

import json
import os
import platform

from bench import __version__
from bench import clock as clock_mod
from bench.kernel import procfs, sysfs


def _cpu_model() -> str | None:
    for line in (procfs.read_text(procfs.CPUINFO) or "").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or None


def _governor() -> str | None:
    return procfs.read_text(sysfs.CPU0_GOVERNOR)


def _numa_nodes() -> int | None:
    """Online NUMA nodes, from the range list in /sys/devices/system/node/online ("0-1", "0,2-3");
    None when the kernel exposes none (built without CONFIG_NUMA)."""
    text = procfs.read_text(sysfs.NODE_ONLINE)
    if not text:
        return None
    count = 0
    for part in text.split(","):
        first, _, last = part.partition("-")
        count += int(last or first) - int(first) + 1
    return count


def _clock_fields() -> dict:
    clock = clock_mod.current()
    # Under icount every vCPU runs round-robin on one host thread: the count of them says how
    # many other CPUs' instructions a wall-clock region may include.
    vcpus = os.cpu_count() if os.environ.get("HOTBENCH_IN_VM") else None
    return {"clock": clock.kind, "icount_shift": clock.shift, "vcpus": vcpus}


def _vm_boot() -> dict | None:
    """Which boot of 'hotbench vm' ran this and why the earlier ones died before the command
    started ({"attempts": N, "earlier_failures": [...]}); None outside a hotbench guest."""
    text = os.environ.get("HOTBENCH_VM_BOOT")  # bench.vm.launch.BOOT_ENV
    try:
        return json.loads(text) if text else None
    except ValueError:
        return {"unparsed": text}


def describe() -> dict:
    """The manifest's ``environment`` block."""
    from bench.kernel import probe

    info = procfs.meminfo()
    return {
        "hotbench_version": __version__,
        "kernel_release": os.uname().release,
        "kernel_version": os.uname().version,
        "machine": os.uname().machine,
        "hostname": os.uname().nodename,
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "cpu_affinity": sorted(os.sched_getaffinity(0)),  # hotbench run --affinity
        "mem_total_bytes": info.get("MemTotal"),
        "thp_enabled": procfs.thp_mode(),
        "thp_defrag": procfs.bracketed_choice(procfs.read_text(sysfs.THP_DEFRAG)),
        "numa_balancing": procfs.read_text(procfs.NUMA_BALANCING),
        "numa_nodes": _numa_nodes(),  # balancing only scans with two or more (hotbench vm --numa-nodes)
        "cpufreq_governor": _governor(),
        # Set by 'hotbench vm' inside its guest: timings under emulation (tcg) are not comparable.
        "accel": os.environ.get("HOTBENCH_ACCEL", "native"),
        # 'hotbench vm --icount': the *_ns columns count guest instructions (bench/clock.py).
        **_clock_fields(),
        "vm_boot": _vm_boot(),
        "python": platform.python_version(),
        "kernel_facts": probe.raw_facts(),
    }
