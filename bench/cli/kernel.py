"""``hotbench kernel``: test kernels for ``hotbench vm``, cached under ~/.cache/hotbench/kernels.

    hotbench kernel fetch debian[:VERSION]         Debian's packaged kernel (default: newest 7.3)
    hotbench kernel build --debian 7.3             Debian's linux-source-7.3 + bench/kernel/hotbench.config
    hotbench kernel build --source ~/linux         a source tree of yours + the fragment (out of tree)
    hotbench kernel list                           cached kernels, their release and mechanisms

``fetch`` and ``build`` print the cache entry's path on stdout (progress and stage
durations go to stderr); boot it with ``hotbench vm --kernel PATH/vmlinuz``.
Exit status: 0 done, 1 error.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench.errors import HotbenchError

# (name, one-line help), nested under 'hotbench kernel'.
SUBCOMMANDS = [
    ("fetch", "download a distribution kernel: debian[:VERSION] (default debian:7.3)"),
    ("build", "build a kernel with bench/kernel/hotbench.config from a source tree or Debian's linux-source"),
    ("list", "cached kernels with their release and the mechanisms their config enables"),
]


def set_argparser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kernel_command", metavar="SUBCOMMAND", required=True)
    for name, help_text in SUBCOMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == "fetch":
            p.add_argument("spec", nargs="?", default="debian", help="debian or debian:VERSION (default debian)")
        elif name == "build":
            group = p.add_mutually_exclusive_group(required=True)
            group.add_argument("--source", type=Path, metavar="DIR", help="a kernel source tree (left untouched)")
            group.add_argument("--debian", metavar="VERSION", help="Debian's linux-source-VERSION, e.g. 7.3")
            p.add_argument("-j", "--jobs", type=int, default=os.cpu_count(), help="make -j (default: CPU count)")
        elif name == "list":
            p.add_argument("--json", action="store_true", help="print the list as JSON")


def _list(as_json: bool) -> int:
    import json

    from bench.vm import kernels

    found = kernels.entries()
    if as_json:
        print(json.dumps([{"key": k.key, "path": str(k.path), "image": str(k.image), "release": k.release,
                           "kind": k.meta.get("kind"), "mechanisms": k.mechanisms()} for k in found], indent=2))
        return 0
    if not found:
        print(f"no cached kernels in {kernels.kernels_dir()}: see 'hotbench kernel fetch' and 'hotbench kernel build'")
        return 0
    width = max(len(k.key) for k in found)
    for k in found:
        print(f"{k.key:<{width}}  {k.release}")
        print(f"{'':<{width}}  mechanisms: {', '.join(k.mechanisms()) or 'none'}")
    print(f"\n(in {kernels.kernels_dir()})")
    return 0


def main(args: argparse.Namespace) -> int:
    if args.kernel_command == "list":
        return _list(args.json)
    if args.kernel_command == "fetch":
        from bench.vm.kernels import debian

        kernel = debian.fetch(args.spec)
    else:
        from bench.vm.kernels import build

        if args.jobs is not None and args.jobs < 1:
            raise HotbenchError(f"--jobs must be at least 1, not {args.jobs}")
        kernel = build.build_source(args.source, args.jobs) if args.source else build.build_debian(args.debian,
                                                                                                   args.jobs)
    print(kernel.path)
    return 0
