"""Boot a kernel image under QEMU with this checkout visible and run one command inside
(drgn's vmtest shape): the host root read-only over 9p under a tmpfs overlay, the checkout,
the numba cache and any ``share`` directories read-write at their host paths, a busybox
initramfs (``bench/vm/_guest.py``) that chroots and writes the command's exit status to a
control directory. The console streams to the caller.

Failures: setup problems (no QEMU, unreadable image, no busybox) raise ``HotbenchError``;
a guest that never reports a status — kernel panic, init failure, QEMU crash — raises
``LostVMError`` (exit status 125), a timeout ``VMTimeoutError`` (124): "VM lost" is kept
apart from "the command failed", whose status is returned as is.

A guest that dies before its command starts (the init's handshake, ``_guest.STARTED``) is
booted again, up to ``boot_retries`` times: QEMU 7.2's multi-threaded TCG sometimes runs
kernel code that text patching has already rewritten (an ``int3`` oops where a NOP was patched
early in boot), which says nothing about the kernel under test. A crash after the command
started is never retried (the command may have done half its work), though the message
blames QEMU when the int3 it hit is gone from memory; nor is an init that gives up
(``INIT_ERROR``), QEMU failing or a timeout. The guest's environment says which boot ran
the command and why the earlier ones died (``BOOT_ENV``, recorded in every manifest).
"""

from __future__ import annotations

import collections
import ctypes
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from bench import clock
from bench.vm import _guest
from bench.errors import HotbenchError
from bench.kernel import procfs

__all__ = ["LostVMError", "VMTimeoutError", "VM", "kernel_release", "choose_accel", "choose_tcg_threads",
           "check_icount", "qemu_command", "mem_mib", "numa_layout", "find_modules", "find_config", "numba_cache_dir",
           "warm_numba_cache", "run", "CHECKOUT"]

QEMU = "qemu-system-x86_64"
CHECKOUT = Path(__file__).resolve().parents[2]
LOST_STATUS, TIMEOUT_STATUS = 125, 124
BOOT_ENV = "HOTBENCH_VM_BOOT"  # JSON {"attempts": N, "earlier_failures": [reason, ...]} in the guest
_PANIC = re.compile(r"Kernel panic - not syncing: (.*)")
# x86 die(): "Oops: int3: 0000 [#1] SMP NOPTI" (older kernels print no "Oops: " prefix); a
# "BUG: ..." or "kernel BUG at ...!" line a few lines before it says what went wrong; RIP with
# CS 0010 says where, in the kernel: "RIP: 0010:set_next_task_fair+0x609/0x8a0".
_DIE = re.compile(r"(?:^|\] )(?:Oops: )?([^:[\]]+?): [0-9a-f]{4} \[#\d+\]")
_BUG = re.compile(r"\b((?:kernel )?BUG(?::| at) .*?)!?\s*$")
_KERNEL_RIP = re.compile(r"RIP: 0010:([^\s/]+)")
_CODE = re.compile(r"Code: (.*<[0-9a-f]{2}>.*)")  # the bytes around RIP, the one at RIP in <>
STALE_INT3 = "an int3 no longer in memory"
_KVM_FAILED = "KVM internal error"


class LostVMError(HotbenchError):
    """The guest never reported its command's status."""

    exit_status = LOST_STATUS


class VMTimeoutError(LostVMError):
    exit_status = TIMEOUT_STATUS


def numba_cache_dir() -> Path:
    """numba's cache shared by host and guest; both compile for NUMBA_CPU_NAME=generic."""
    from bench.vm.kernels import cache_dir

    return cache_dir() / "numba-generic"


# ---------------------------------------------------------------- the kernel image

def kernel_release(image: Path) -> str | None:
    """The release string of an x86 bzImage (setup header ``kernel_version``), None if absent.

    Raises HotbenchError when *image* cannot be read or is not a bzImage."""
    try:
        with open(image, "rb") as f:
            head = f.read(0x8000)
    except OSError as e:
        raise HotbenchError(f"cannot read kernel image {image}: {e.strerror}") from e
    if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
        raise HotbenchError(f"{image} is not an x86 bzImage (no 'HdrS' setup header): give arch/x86/boot/bzImage "
                            "or a distribution's vmlinuz, not vmlinux")
    offset = int.from_bytes(head[0x20E:0x210], "little")
    if not offset or 0x200 + offset >= len(head):
        return None
    text = head[0x200 + offset:0x200 + offset + 256].split(b"\0", 1)[0].decode("ascii", "replace")
    return text.split(" ", 1)[0] or None


def _release_dir(base: Path, release: str | None) -> Path | None:
    """*base* itself if it is a module release dir, else base/lib/modules/RELEASE (or the only one)."""
    if (base / "modules.order").exists() or (base / "modules.builtin").exists():
        return base
    for sub in ("lib/modules", "usr/lib/modules"):
        root = base / sub
        if release and (root / release).is_dir():
            return root / release
        found = sorted(root.iterdir()) if root.is_dir() else []
        if len(found) == 1:
            return found[0]
    return None


def find_modules(image: Path, release: str | None, explicit: Path | None = None) -> Path | None:
    """The module tree for *image*: *explicit* (a ``lib/modules/RELEASE`` dir or an
    ``INSTALL_MOD_PATH``), a hotbench cache entry or Debian layout around the image, or the
    host's ``/lib/modules/RELEASE``; None when none is found (a kernel with 9p built in)."""
    if explicit is not None:
        found = explicit if (explicit / "kernel").is_dir() else _release_dir(explicit, release)
        if found is None:
            raise HotbenchError(f"--modules {explicit}: no module tree there (expected modules.order, kernel/ "
                                f"or lib/modules/{release or 'RELEASE'}/)")
        return found
    image = image.resolve()
    bases = [image.parent, image.parent.parent]
    if image.parent.name == "boot" and image.parent.parent.name == "x86":  # arch/x86/boot/bzImage: its tree
        bases.append(image.parents[3])
    for base in bases:
        found = _release_dir(base, release) if base != Path("/") else None
        if found is not None and found != Path("/"):
            return found
    if release and (Path("/lib/modules") / release / "modules.order").exists():
        return Path("/lib/modules") / release
    return None


def find_config(image: Path, release: str | None, modules: Path | None) -> Path | None:
    """The image's kernel config: beside it (``config``, ``config-RELEASE``, a build tree's
    ``.config``), in its module tree, or ``/boot/config-RELEASE``."""
    image = image.resolve()
    candidates = [image.parent / "config", image.parent / f"config-{release}"]
    if image.parent.name == "boot" and image.parent.parent.name == "x86":  # arch/x86/boot/bzImage
        candidates.append(image.parents[3] / ".config")
    if modules is not None:
        candidates.append(modules / "config")
    candidates.append(Path("/boot") / f"config-{release}")
    return next((c for c in candidates if c.is_file()), None)


# ---------------------------------------------------------------- QEMU

def find_qemu() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise HotbenchError(f"{QEMU} not found on PATH: install Debian's qemu-system-x86 (tools/setup-system)")
    return path


def _cpu_has_virt() -> bool:
    try:
        flags = Path(procfs.CPUINFO).read_text()
    except OSError:
        return False
    return bool(re.search(r"^flags\s*:.*\b(vmx|svm)\b", flags, re.M))


def choose_accel(requested: str = "auto") -> tuple[str, str | None]:
    """('kvm' | 'tcg', a note saying why TCG was chosen or None)."""
    if requested == "tcg":
        return "tcg", None
    why = None
    if not os.path.exists("/dev/kvm"):
        why = "no /dev/kvm"
    elif not os.access("/dev/kvm", os.R_OK | os.W_OK):
        why = "/dev/kvm is not read-writable by this user"
    elif not _cpu_has_virt():
        why = "/dev/kvm exists but the CPU exposes neither vmx nor svm (a para-virtual KVM cannot boot ordinary kernels)"
    if why is None:
        return "kvm", None
    if requested == "kvm":
        raise HotbenchError(f"--accel kvm: KVM is unusable here: {why}; use --accel tcg")
    return "tcg", f"KVM unusable ({why}): using TCG software emulation, ~15x slower; results record accel=tcg"


@dataclass
class VM:
    """What one boot needs; ``qemu_command`` turns it into an argv."""

    image: Path
    initrd: Path
    ctl_dir: Path
    accel: str = "tcg"
    mem: str = "2G"
    cpus: int = 2
    shares: list[_guest.Share] = field(default_factory=list)
    verbose: bool = False
    extra_append: str = ""
    numa_nodes: int = 1
    icount: int | None = None  # QEMU's instruction clock, this shift (bench/clock.py); TCG only
    tcg_threads: str = "multi"  # a host thread per vCPU, or "single": all vCPUs round-robin on one


def mem_mib(mem: str) -> int:
    """MiB in a ``-m`` size as ``hotbench vm --mem`` takes it: ``2G``, ``512M``, or bare MiB (QEMU's unit)."""
    m = re.fullmatch(r"(\d+)([MG]?)", mem.strip().upper())
    if m is None:
        raise HotbenchError(f"memory size like 2G or 512M, not {mem!r}")
    return int(m[1]) * (1024 if m[2] == "G" else 1)


def numa_layout(mem: str, cpus: int, nodes: int) -> list[tuple[int, list[int]]]:
    """(MiB, CPU indexes) per guest NUMA node: memory split evenly, CPUs dealt round-robin
    (node k gets CPUs k, k+nodes, ...). With fewer CPUs than nodes the last nodes get none:
    memory-only nodes, which QEMU and Linux accept (like CXL memory expanders).

    Raises HotbenchError when *nodes* < 1, a node would get less than 1 MiB, or the memory
    does not divide evenly (QEMU needs the nodes' sizes to add up to ``-m`` exactly)."""
    total = mem_mib(mem)
    if nodes < 1:
        raise HotbenchError(f"--numa-nodes {nodes}: must be at least 1")
    if nodes > total:
        raise HotbenchError(f"--numa-nodes {nodes}: --mem {mem} is {total} MiB, less than 1 MiB per node")
    if total % nodes:
        raise HotbenchError(f"--numa-nodes {nodes}: --mem {mem} ({total} MiB) does not divide evenly into "
                            f"{nodes} nodes; pick a size that is a multiple of {nodes} MiB")
    return [(total // nodes, list(range(k, cpus, nodes))) for k in range(nodes)]


def _smp(vm: VM) -> str:
    # With NUMA nodes every CPU is its own socket: QEMU 7.2's default puts all CPUs in one socket
    # (one LLC), and Linux WARNs at boot when LLC siblings sit on different nodes
    # ("sched: CPU #1's llc-sibling CPU #0 is not on the same node!", arch/x86/kernel/smpboot.c).
    return str(vm.cpus) if vm.numa_nodes <= 1 else f"{vm.cpus},sockets={vm.cpus},cores=1,threads=1"


def _numa_args(vm: VM) -> list[str]:
    """``-object memory-backend-ram`` + ``-numa node`` per node; none for one node (QEMU's default)."""
    if vm.numa_nodes <= 1:
        return []
    args: list[str] = []
    for k, (mib, cpus) in enumerate(numa_layout(vm.mem, vm.cpus, vm.numa_nodes)):
        # A non-contiguous CPU set is given as repeated cpus= options (QEMU's -numa node syntax).
        node = f"node,nodeid={k},memdev=m{k}" + "".join(f",cpus={c}" for c in cpus)
        args += ["-object", f"memory-backend-ram,id=m{k},size={mib}M", "-numa", node]
    return args


# Under --icount two boots must execute the same instructions (docs/icount.md, "Determinism"):
# no address-space randomisation (where the arena, its page tables and every library land, and so
# the page-table pages a walk touches, move with it) and one hash seed for Python's dicts and sets
# (their probe sequences are instructions the tracker thread executes in every phase).
ICOUNT_CMDLINE = ["norandmaps", "nokaslr"]
ICOUNT_ENV = {"PYTHONHASHSEED": "0"}


def kernel_cmdline(vm: VM) -> str:
    # damon_stat.enabled=N: DAMON_STAT (on by default in Debian's 7.3) holds DAMON exclusively,
    # so no sysfs kdamond could start; a dotted parameter for an absent module is ignored.
    parts = ["console=ttyS0", "rdinit=/init", "oops=panic", "panic=-1", "mitigations=off", "no_timer_check",
             "random.trust_cpu=on", "damon_stat.enabled=N", "loglevel=7" if vm.verbose else "quiet"]
    parts += ICOUNT_CMDLINE if vm.icount is not None else []
    return " ".join(parts + ([vm.extra_append] if vm.extra_append else []))


def _accel_args(vm: VM) -> list[str]:
    """``-accel``, plus ``-icount`` for the instruction clock: icount needs single-threaded TCG
    (all vCPUs round-robin on one host thread); sleep=off lets an idle vCPU's clock jump to its
    next timer instead of waiting for it in host time, so guest time is instructions alone."""
    if vm.accel == "kvm":
        return ["-accel", "kvm"]
    if vm.icount is None:
        return ["-accel", f"tcg,thread={vm.tcg_threads}"]
    return ["-accel", "tcg,thread=single", "-icount", f"shift={vm.icount},sleep=off"]


def choose_tcg_threads(accel: str, icount: int | None, requested: str | None) -> str:
    """TCG's threading: *requested*, else "multi" (one host thread per vCPU) unless the instruction
    clock needs "single". Single-threaded TCG was never seen to run code a patch has replaced (the
    int3 race of multi-threaded TCG in QEMU 7.2, see ``_stale_int3``), at the price of running
    vCPUs in turn. Measured with Debian's 7.3.4, 2 vCPUs, flipping the sched_schedstats static key
    while both vCPUs context-switch: multi-threaded, 7 of 8 boots oopsed, most within 13-21 flips
    (-cpu qemu64 no better); single-threaded, no oops in 3,000 flips. Booting alone is rarely hit:
    50 multi-threaded boots of that kernel to ``-- true`` (2 vCPUs, a loaded host) all started (issue 17)."""
    if requested is None:
        return "single" if icount is not None else "multi"
    if accel == "kvm":
        raise HotbenchError(f"--tcg-threads {requested}: KVM runs no TCG; drop it or use --accel tcg")
    if icount is not None and requested != "single":
        raise HotbenchError(f"--tcg-threads {requested}: --icount runs single-threaded TCG; drop --tcg-threads")
    return requested


def check_icount(accel: str, shift: int | None) -> None:
    """Refuse what QEMU cannot do: an instruction clock under KVM, or a shift outside 0..10."""
    if shift is None:
        return
    if accel == "kvm":
        raise HotbenchError("--icount needs TCG emulation (QEMU counts instructions only there): drop --accel kvm")
    if not 0 <= shift <= 10:
        raise HotbenchError(f"--icount={shift}: the shift must be 0..10 (guest ns per instruction = 2**shift)")


def qemu_command(vm: VM, qemu: str = QEMU) -> list[str]:

    def fsdev(n: int, tag: str, path: str, readonly: bool) -> list[str]:
        opts = f"local,id=fs{n},path={path},security_model=none,multidevs=remap" + (",readonly=on" if readonly else "")
        return ["-fsdev", opts, "-device", f"virtio-9p-pci,fsdev=fs{n},mount_tag={tag}"]

    cmd = [qemu, "-machine", "q35", "-cpu", _cpu_model(vm.accel), *_accel_args(vm), "-m", vm.mem, "-smp", _smp(vm),
           *_numa_args(vm), "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio",
           "-kernel", str(vm.image), "-initrd", str(vm.initrd), "-append", kernel_cmdline(vm)]
    cmd += fsdev(0, _guest.ROOT_TAG, "/", True)
    cmd += fsdev(1, _guest.CTL_TAG, str(vm.ctl_dir), False)
    for i, share in enumerate(vm.shares, start=2):
        cmd += fsdev(i, share.tag, share.path, False)
    return cmd


# ---------------------------------------------------------------- numba cache

_WARM = """
import workloads
for name in workloads.names():
    workloads.create(name, npages=16, page_size=4096, seed=1).warmup()
from bench.kernel import uffd_server
uffd_server.warmup()
try:  # best effort: helpers outside the workloads that trackers call
    from bench.kernel import pagemap
    pagemap.warmup()
    from bench import trackers
    trackers.registry()
except Exception as e:
    print(f"note: partial numba warm-up: {e}")
"""


def warm_numba_cache(env: dict[str, str], stream: TextIO = sys.stderr) -> None:
    """Compile (or load) the numba kernels into the shared cache, as the guest will (generic CPU).
    A failure is only a warning: the guest then compiles what it needs, ~15x slower."""
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _WARM], env=env, cwd=CHECKOUT, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        print(f"hotbench vm: {line}", file=stream)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        print(f"hotbench vm: warning: warming the numba cache on the host failed ({tail}); the guest will compile",
              file=stream)
    else:
        print(f"hotbench vm: numba cache {env['NUMBA_CACHE_DIR']} warm in {time.monotonic() - start:.1f} s",
              file=stream)


# ---------------------------------------------------------------- running

def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _guest_env(accel: str, require: list[str] | None, ctl_bin: str, extra: dict[str, str]) -> dict[str, str]:
    env = {
        "PATH": ":".join([ctl_bin, os.path.dirname(sys.executable), os.environ.get("PATH", "/usr/bin:/bin")]),
        "HOME": os.environ.get("HOME", "/root"),
        "TERM": os.environ.get("TERM", "dumb"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
        "NUMBA_CPU_NAME": "generic",
        "NUMBA_CACHE_DIR": str(numba_cache_dir()),
        "HOTBENCH_ACCEL": accel,
        "HOTBENCH_IN_VM": "1",
    }
    for key in ("LANG", "LC_ALL", "VIRTUAL_ENV"):
        if key in os.environ:
            env[key] = os.environ[key]
    if require:
        env["HOTBENCH_REQUIRE"] = ",".join(require)
    env.update(extra)
    return env


# QEMU 7.2's TCG emulates AVX2 wrongly for numpy's vectorised 64-bit argsort (x86-simd-sort):
# in a '-cpu max' guest, 199 of 200 argsorts of PFN-like uint64 arrays came back unsorted, and
# some crashed the process with SIGSEGV (idle-page's np.unique over PFNs did both). Without
# AVX2 numpy (and pyarrow) take their SSE paths, which TCG gets right. KVM runs the host's CPU.
TCG_CPU = "max,avx2=off"


def _cpu_model(accel: str) -> str:
    return "max" if accel == "kvm" else TCG_CPU


def oops_summary(tail: list[str]) -> str | None:
    """The first oops on the console in one phrase, None if there is none: ``Oops: int3 at
    set_next_task_fair+0x609``; a ``BUG`` line before it comes first (``kernel BUG at
    arch/x86/kernel/alternative.c:2531; Oops: invalid opcode at __text_poke+0x29c``); an int3
    whose breakpoint byte is gone from memory says so (``_stale_int3``)."""
    for i, line in enumerate(tail):
        if m := _DIE.search(line):
            kind = m[1].split(",")[0]  # "general protection fault, probably for non-canonical address ..."
            oops = "Oops" if kind == "Oops" else f"Oops: {kind}"  # page faults die("Oops")
            rip = next((r[1] for r in map(_KERNEL_RIP.search, tail[i:]) if r), None)
            bug = next((b[1] for b in map(_BUG.search, reversed(tail[max(0, i - 6):i])) if b), None)
            stale = f", {STALE_INT3}" if kind == "int3" and _stale_int3(tail[i:]) else ""
            return (f"{bug}; " if bug else "") + oops + (f" at {rip}" if rip else "") + stale
    return None


def _stale_int3(oops: list[str]) -> bool:
    """Whether the byte before RIP in an int3 oops's ``Code:`` line is not 0xcc: the CPU trapped on
    a breakpoint that memory no longer holds, i.e. it ran a translation of the code from before
    text patching finished. Under QEMU 7.2's multi-threaded TCG a vCPU can keep such a stale
    translation (a race fixed in QEMU 8.1). A 0xcc there proves nothing either way."""
    code = next((c[1].split() for c in map(_CODE.search, oops) if c), None)
    if code is None:
        return False
    at = next(k for k, byte in enumerate(code) if byte.startswith("<"))
    return at > 0 and code[at - 1] != "cc"


def _lost_reason(tail: list[str], qemu_status: int) -> str:
    for line in reversed(tail):
        if _guest.INIT_ERROR in line:
            return "guest init failed: " + line.split(_guest.INIT_ERROR, 1)[1].strip()
    for line in tail:
        if m := _PANIC.search(line):
            oops = oops_summary(tail)
            return f"kernel panic: {m[1].strip()}" + (f" ({oops})" if oops else "")
    if qemu_status not in (0, None):
        last = next((line for line in reversed(tail) if line.strip()), "")
        return f"QEMU exited with status {qemu_status}" + (f": {last.strip()}" if last else "")
    return "the guest stopped without reporting its command's exit status"


def run(image: Path, command: list[str], *, modules: Path | None = None, mem: str = "2G",
        cpus: int | None = None, accel: str = "auto", timeout: float | None = None,
        shares: list[Path] = (), require: list[str] | None = None, env: dict[str, str] | None = None,
        warm: bool = True, verbose: bool = False, append: str = "", numa_nodes: int = 1, icount: int | None = None,
        boot_retries: int = 2, tcg_threads: str | None = None, console: TextIO = sys.stdout,
        log: TextIO = sys.stderr) -> int:
    """Boot *image*, run *command* in the guest, return its exit status (see the module doc).
    *numa_nodes* > 1 splits the guest's memory and CPUs over that many NUMA nodes (``numa_layout``).
    *icount* (a shift) runs the guest on QEMU's instruction clock (TCG only; ``bench/clock.py``).
    A guest that dies before the command starts is booted again, at most *boot_retries* times;
    *timeout* applies to each boot. *tcg_threads*: see ``choose_tcg_threads``."""
    image = Path(image)
    cpus = cpus or os.cpu_count() or 1
    layout = numa_layout(mem, cpus, numa_nodes)  # a bad split is refused before anything is started
    check_icount(accel, icount)
    threads = choose_tcg_threads(accel, icount, tcg_threads)
    release = kernel_release(image)
    qemu = find_qemu()
    accel, note = choose_accel("tcg" if icount is not None else accel)
    if note:
        print(f"hotbench vm: {note}", file=log)
    if accel == "kvm" and tcg_threads:
        print(f"hotbench vm: --tcg-threads {tcg_threads} does not apply: KVM works here (--accel tcg to emulate)",
              file=log)
    moddir = find_modules(image, release, modules)
    config = find_config(image, release, moddir)
    numba_dir = numba_cache_dir()
    numba_dir.mkdir(parents=True, exist_ok=True)
    if warm:
        warm_env = {**os.environ, "NUMBA_CPU_NAME": "generic", "NUMBA_CACHE_DIR": str(numba_dir),
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")]))}
        warm_numba_cache(warm_env, log)
    share_paths = [CHECKOUT, numba_dir, *(Path(s).resolve() for s in shares)]
    unique: list[Path] = []
    for p in share_paths:
        p.mkdir(parents=True, exist_ok=True)
        if not any(p == u or u in p.parents for u in unique):
            unique = [u for u in unique if p not in u.parents] + [p]
    vm_shares = [_guest.Share(f"hbshare{i}", str(p)) for i, p in enumerate(unique)]

    with tempfile.TemporaryDirectory(prefix="hotbench-vm-") as tmp:
        ctl = Path(tmp) / "ctl"
        (ctl / "bin").mkdir(parents=True)
        shim = ctl / "bin" / "hotbench"
        shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m bench "$@"\n')
        shim.chmod(0o755)
        exact = ICOUNT_ENV if icount is not None else {}
        guest_env = _guest_env(accel, require, f"{_guest.GUEST_CTL}/bin",
                               {**clock.guest_env(icount), **exact, **(env or {})})
        wanted = _guest.needed_modules(moddir)
        init = _guest.init_script([m for m, _ in wanted], vm_shares,
                                    (release, str(moddir)) if moddir and release else None,
                                    str(config) if config else None, release)
        initrd = _guest.build_initramfs(Path(tmp) / "initramfs.cpio", wanted, init)
        vm = VM(image=image, initrd=initrd, ctl_dir=ctl, accel=accel, mem=mem, cpus=cpus, shares=vm_shares,
                verbose=verbose, extra_append=append, numa_nodes=numa_nodes, icount=icount, tcg_threads=threads)
        nodes = "" if numa_nodes == 1 else " over NUMA nodes " + ", ".join(
            f"{k}: {mib}M/{'+'.join(map(str, c)) or 'no'} CPU" for k, (mib, c) in enumerate(layout))
        clock_note = "" if icount is None else f" (icount shift {icount}: costs in instructions)"
        if accel == "tcg" and icount is None and threads == "single":
            clock_note = " (single-threaded)"
        print(f"hotbench vm: booting {image} ({release or 'release unknown'}) with {accel}{clock_note}, {vm.cpus} CPUs, "
              f"{mem}{nodes}; {len(wanted)} modules in the initramfs"
              + (f" from {moddir}" if wanted else ""), file=log)
        return _run_until_started(qemu_command(vm, qemu), ctl, list(command), guest_env, boot_retries, timeout,
                                  console, log)


def _run_until_started(argv: list[str], ctl: Path, command: list[str], guest_env: dict[str, str],
                       boot_retries: int, timeout: float | None, console: TextIO, log: TextIO) -> int:
    """Boot until the command has started, at most 1 + *boot_retries* times; return its exit status."""
    failures: list[str] = []  # why each earlier boot died before the command started
    while True:
        boot = len(failures) + 1
        _prepare_ctl(ctl, command, {**guest_env, BOOT_ENV: json.dumps({"attempts": boot,
                                                                       "earlier_failures": failures})})
        cpu0 = _children_cpu_seconds()
        qemu_status, tail, seconds = _boot(argv, timeout, console)
        status = _command_status(ctl)
        if status is not None:
            which = f" (boot {boot} of {boot_retries + 1})" if failures else ""
            # QEMU's own CPU time: about how long the guest would take on an idle host (TCG is CPU-bound)
            print(f"hotbench vm: guest command exited {status} after {seconds:.1f} s{which}; QEMU used "
                  f"{_children_cpu_seconds() - cpu0:.1f} s of CPU", file=log)
            return status
        if any(_KVM_FAILED in line for line in tail):
            raise LostVMError("KVM could not run this guest (KVM internal error): retry with --accel tcg")
        reason = _lost_reason(tail, qemu_status)
        if not _died_before_command(ctl, tail, qemu_status):
            raise LostVMError(f"VM lost after {seconds:.1f} s: {reason}{_emulator_at_fault(reason, argv)}")
        failures.append(reason)
        if len(failures) > boot_retries:
            raise LostVMError(_never_started(failures, seconds))
        print(f"hotbench vm: boot {boot} of {boot_retries + 1} died after {seconds:.1f} s, before the command "
              f"started: {reason}; booting again", file=log)


def _prepare_ctl(ctl: Path, command: list[str], guest_env: dict[str, str]) -> None:
    """The control share as a fresh boot needs it: this boot's run.sh, no handshake or status left."""
    for name in (_guest.STARTED, _guest.STATUS, _guest.STATUS + ".tmp"):
        (ctl / name).unlink(missing_ok=True)
    (ctl / "run.sh").write_text(_guest.run_script(command, guest_env, os.getcwd(), str(CHECKOUT)))


def _command_status(ctl: Path) -> int | None:
    try:
        text = (ctl / _guest.STATUS).read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def _died_before_command(ctl: Path, tail: list[str], qemu_status: int) -> bool:
    """The guest stopped by itself (under -no-reboot a panic ends QEMU with status 0) before the
    init's handshake, and not because the init gave up (that fails the same way every time)."""
    return (qemu_status == 0 and not (ctl / _guest.STARTED).exists()
            and not any(_guest.INIT_ERROR in line for line in tail))


def _emulator_at_fault(reason: str, argv: list[str]) -> str:
    """What to add when a crash the command saw was the emulator's (a stale int3 under
    multi-threaded TCG), not the kernel's; never booted again: the command may have done half its work."""
    if STALE_INT3 not in reason or not any("thread=multi" in a for a in argv):
        return ""
    return ("; QEMU's fault, not this kernel's: multi-threaded TCG ran code from before kernel text patching "
            "finished (QEMU 7.2); run it again, or with --tcg-threads single (never seen to do this)")


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # waited-for children: QEMU once _boot returns
    return usage.ru_utime + usage.ru_stime


def _never_started(failures: list[str], seconds: float) -> str:
    if len(failures) == 1:
        return f"VM lost after {seconds:.1f} s, before the command started: {failures[0]}"
    if len(set(failures)) == 1:
        return f"VM lost: {len(failures)} boots died before the command started, each the same way: {failures[0]}"
    return (f"VM lost: {len(failures)} boots died before the command started: "
            + "; ".join(f"boot {n}: {why}" for n, why in enumerate(failures, start=1)))


def _boot(argv: list[str], timeout: float | None, console: TextIO) -> tuple[int, list[str], float]:
    """Run QEMU, stream its console, return (QEMU status, last console lines, seconds)."""
    start = time.monotonic()
    tail: collections.deque[str] = collections.deque(maxlen=200)
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=_die_with_parent)

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").replace("\r", "")
            tail.append(line.rstrip("\n"))
            console.write(line)
            console.flush()
            if _KVM_FAILED in line:
                proc.kill()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        reader.join(5)
        raise VMTimeoutError(f"VM timed out after {timeout:g} s; QEMU killed") from None
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    reader.join(5)
    return proc.returncode, list(tail), time.monotonic() - start
