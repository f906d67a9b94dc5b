"""``hotbench plot RUN_DIR [...] [--figure NAME] [--format png|svg|pdf]``: the figures of one or
more results directories, each drawn only when the data holds what it needs.

Without ``--figure`` every figure is drawn and those the data cannot support are listed
on stderr with the reason; a figure asked for by name that cannot be drawn is an error.
Exit status: 0 written, 1 bad input or nothing to draw (one ``error:`` line).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis import catalog
from bench.errors import HotbenchError


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def set_argparser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="*", type=Path, metavar="RUN_DIR",
                        help="results directory (or a directory of them); several merge, labelled by kernel")
    parser.add_argument("--figure", type=_names, action="extend", metavar="NAME",
                        help="figure(s) to draw, comma-separated or repeated (default: all): "
                             + ", ".join(catalog.NAMES))
    parser.add_argument("--format", default="png", help="png (default), svg or pdf")
    parser.add_argument("--out", type=Path, help="where to write the figures (default: FIRST_RUN_DIR/figures)")
    parser.add_argument("--list", action="store_true", help="list the figures and the data each needs, then exit")


def main(args: argparse.Namespace) -> int:
    if args.list:
        for name, needs in catalog.FIGURES:
            print(f"{name:22} {needs}")
        return 0
    if not args.run_dirs:
        raise HotbenchError("name at least one RUN_DIR (a results directory, or a directory of them)")
    unknown = [n for n in args.figure or [] if n not in catalog.NAMES]
    if unknown:
        raise HotbenchError(f"unknown figure {unknown[0]!r}; choose from {', '.join(catalog.NAMES)}")
    if args.format not in catalog.FORMATS:
        raise HotbenchError(f"unknown format {args.format!r}; choose from {', '.join(catalog.FORMATS)}")
    from analysis import data, figures

    loaded = data.load(args.run_dirs)
    out = args.out or Path(args.run_dirs[0]) / "figures"
    written, skipped = figures.render(loaded, out, args.figure, args.format)
    if args.figure and skipped:
        name, why = next(iter(skipped.items()))
        raise HotbenchError(f"figure {name} cannot be drawn from these results: {why}")
    for name, why in skipped.items():
        print(f"skip {name}: {why}", file=sys.stderr)
    if not written:
        raise HotbenchError("no figure can be drawn from these results (see the reasons above)")
    for path in written:
        print(path)
    return 0
