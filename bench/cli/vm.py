"""``hotbench vm``: boot a kernel image under QEMU and run one command inside, with this
checkout, the numba cache and any ``--share`` directory visible read-write at their host
paths (so results land on the host) and the rest of the host root read-only.

    hotbench vm -- hotbench probe                  # in a built kernel tree: its arch/x86/boot/bzImage
    hotbench vm --kernel ~/.cache/hotbench/kernels/KEY -- hotbench probe     # what 'kernel fetch' printed
    hotbench vm --kernel debian-7.3.4+deb13-amd64-7.3.4-1_bpo13+1 --require auto -- python3 -m pytest tests/kernel
    hotbench vm --kernel debian-7.3.4+deb13-amd64-7.3.4-1_bpo13+1 --icount -- hotbench run --trackers rwp

Exit status: the guest command's own; 1 setup error (no QEMU, unreadable image, bad
option); 124 timeout (QEMU killed); 125 VM lost (kernel panic, init failure, QEMU died:
the command's status never came back). A guest that dies before the command starts is
booted again first (``--boot-retries``), each time announced in one line.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Callable

from bench.errors import HotbenchError

TREE_IMAGE = Path("arch/x86/boot/bzImage")  # what 'make bzImage' leaves in a kernel tree


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _whole_number(minimum: int, what: str = "a whole number") -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what}, not {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value
    return parse


def _mem(text: str) -> str:
    if not re.fullmatch(r"\d+[MG]?", text.upper()):
        raise argparse.ArgumentTypeError(f"memory size like 2G or 512M, not {text!r}")
    return text.upper()


def _icount_shift(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"an icount shift 0..10, not {text!r} (write --icount=N, or --icount -- "
                                         "COMMAND)") from None
    if not 0 <= value <= 10:
        raise argparse.ArgumentTypeError(f"the shift must be 0..10 (guest ns per instruction = 2**shift), not {value}")
    return value


def set_argparser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kernel", metavar="KERNEL",
                        help="what to boot: a key from 'hotbench kernel list', the directory 'kernel fetch/build' "
                             f"print, a kernel tree or a bzImage/vmlinuz (default: ./{TREE_IMAGE}, when the current "
                             "directory is a built kernel tree)")
    parser.add_argument("--modules", type=Path, metavar="DIR",
                        help="the kernel's module tree (lib/modules/RELEASE or an INSTALL_MOD_PATH), for kernels "
                             "with 9p/overlay as modules (default: found beside the image or in /lib/modules)")
    parser.add_argument("--mem", type=_mem, default="2G", help="guest memory (default 2G)")
    parser.add_argument("--cpus", type=_positive_int, help="guest CPUs (default: as many as the host)")
    parser.add_argument("--numa-nodes", type=_whole_number(1, "a whole number of NUMA nodes"), default=1, metavar="N",
                        help="split guest memory (evenly; it must divide) and CPUs (round-robin; nodes beyond the "
                             "CPU count get memory only) over N NUMA nodes (default 1: no NUMA topology)")
    parser.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto",
                        help="KVM, TCG emulation, or auto: KVM when it really works (default auto)")
    parser.add_argument("--icount", nargs="?", const=0, type=_icount_shift, metavar="SHIFT",
                        help="run on QEMU's instruction clock (TCG single-threaded, -icount shift=SHIFT,sleep=off; "
                             "default shift 0: 1 guest ns = 1 instruction): every cost inside is an exact "
                             "instruction count, labelled so; implies --accel tcg and, unless --cpus is given, "
                             "1 vCPU (vCPUs share one host thread and one clock; docs/icount.md)")
    parser.add_argument("--timeout", type=float, help="seconds before QEMU is killed, per boot (default: none)")
    parser.add_argument("--tcg-threads", choices=("multi", "single"),
                        help="TCG: a host thread per vCPU (multi, the default) or all vCPUs in turn on one (single, "
                             "as --icount): slower with several busy vCPUs, but immune to QEMU 7.2's race in which a "
                             "vCPU runs kernel code a text patch has replaced (an int3 oops)")
    parser.add_argument("--boot-retries", type=_whole_number(0), default=2, metavar="N",
                        help="boot again, at most N times, when the guest dies before the command starts (an "
                             "emulator fault, e.g. a text-patching int3 oops under multi-threaded TCG); a crash "
                             "after it started is never retried (default %(default)s)")
    parser.add_argument("--share", type=Path, action="append", default=[], metavar="DIR",
                        help="also share DIR read-write at the same path (repeatable; the checkout and the "
                             "numba cache always are)")
    parser.add_argument("--require", metavar="MECHS",
                        help="set HOTBENCH_REQUIRE in the guest (tests fail instead of skipping these mechanisms): "
                             "comma-separated names, or 'auto' for those the kernel's config enables")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra guest environment")
    parser.add_argument("--append", default="", metavar="ARGS", help="extra kernel command-line arguments")
    parser.add_argument("--no-warm", action="store_true", help="skip warming the numba cache on the host first")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the kernel's boot messages")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND...",
                        help="what to run in the guest (default: hotbench probe)")
    parser.epilog = ("exit status: the guest command's; 1 setup error; 124 timeout; 125 VM lost "
                     "(panic, init failure, QEMU died; after --boot-retries if before the command started)")


def resolve_image(text: str | None) -> Path:
    """The image to boot, from whatever 'hotbench kernel fetch/build/list' print: a cache key,
    a cached kernel's directory, a kernel tree (its bzImage) or an image file. None: the
    bzImage of the kernel tree in the current directory, as virtme-ng does."""
    from bench.vm import kernels

    if text is None:
        if TREE_IMAGE.is_file():
            return TREE_IMAGE.resolve()
        raise HotbenchError(f"no --kernel, and no {TREE_IMAGE} here: give --kernel a key from 'hotbench kernel "
                            f"list', a cached kernel's directory or an image, or run from a built kernel tree")
    path = Path(text).expanduser()
    if path.is_dir():
        entry = kernels.load_entry(path)
        if entry:
            return entry.image
        if (path / TREE_IMAGE).is_file():
            return (path / TREE_IMAGE).resolve()
        raise HotbenchError(f"--kernel {text}: a directory, but neither a cached kernel (no vmlinuz and meta.json) "
                            f"nor a built kernel tree (no {TREE_IMAGE})")
    if path.exists() or "/" in text:
        return path
    found = kernels.lookup(text)
    if found:
        return found.image
    keys = ", ".join(k.key for k in kernels.entries()) or "none cached"
    raise HotbenchError(f"--kernel {text}: not a file, a directory or a cached kernel's key ({keys})")


def resolve_require(spec: str | None, image: Path, modules: Path | None) -> list[str] | None:
    if not spec:
        return None
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if "auto" not in names:
        return names
    from bench import vm
    from bench.vm.kernels import kconfig

    release = vm.kernel_release(image)
    config = vm.find_config(image, release, vm.find_modules(image, release, modules))
    if config is None:
        raise HotbenchError(f"--require auto: no config found for {image} (looked beside it, in its module tree "
                            "and /boot); name the mechanisms instead")
    return [n for n in names if n != "auto"] + kconfig.mechanisms(kconfig.read_config(config))


def main(args: argparse.Namespace) -> int:
    from bench import vm

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    command = command or ["hotbench", "probe"]
    env = {}
    for item in args.env:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise HotbenchError(f"--env {item!r}: write KEY=VALUE")
        env[key] = value
    vm.check_icount(args.accel, args.icount)  # one line, before anything is built or booted
    vm.choose_tcg_threads(args.accel, args.icount, args.tcg_threads)
    cpus = args.cpus or (1 if args.icount is not None else None)
    vm.numa_layout(args.mem, cpus or os.cpu_count() or 1, args.numa_nodes)  # refuse a bad split up front
    image = resolve_image(args.kernel)
    try:
        return vm.run(image, command, modules=args.modules, mem=args.mem, cpus=cpus, accel=args.accel,
                      timeout=args.timeout, shares=args.share,
                      require=resolve_require(args.require, image, args.modules), env=env,
                      warm=not args.no_warm, verbose=args.verbose, append=args.append, numa_nodes=args.numa_nodes,
                      icount=args.icount, boot_retries=args.boot_retries, tcg_threads=args.tcg_threads)
    except vm.LostVMError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_status
