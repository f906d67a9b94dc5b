"""``hotbench report RUN_DIR [...]``: report.md, report.html, a CSV per table and every figure
the data supports, from one or more results directories (runs from several kernels or
machines merge, labelled by kernel).

A RUN_DIR is a results directory, or a directory whose subdirectories are (``--out`` of
``hotbench run``). Exit status: 0 written, 1 bad input (one ``error:`` line).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def set_argparser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                        help="results directory (or a directory of them); name several to merge and compare "
                             "(the first kernel named is the reference)")
    parser.add_argument("--out", type=Path, help="where to write the report (default: FIRST_RUN_DIR/report)")


def main(args: argparse.Namespace) -> int:
    from analysis import report

    out = report.build(args.run_dirs, args.out)
    print(out / report.REPORT_MD)
    print(out / report.REPORT_HTML)
    return 0
