"""The docs in step with the code, and the package's dependencies declared: the README's test
command is .ci/run's, every tracker is in the README, the nightly docs show the suite's
current version, and every module the packages import is the standard library's, ours, or
declared in pyproject.toml (a fresh virtual environment has nothing else)."""

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _readme_command(heading: str) -> str:
    block = README[README.index(heading):]
    return re.search(r"\n\n    (\S.*)\n", block).group(1)


def test_ci_runs_the_readmes_test_command():
    ci = [line for line in (ROOT / ".ci/run").read_text().splitlines()
          if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert ci == [_readme_command("Run the tests")]
    assert "python3 -m venv" in ci[0] and ".venv/bin/python -m pytest" in ci[0]  # a fresh venv, no system site


def test_readme_names_every_tracker_and_workload():
    from bench import trackers
    import workloads

    for name in trackers.registry():
        assert f"`{name}`" in README, name
    for name in ("masim", "zipf", "hotcold"):
        assert name in README


def test_nightly_docs_show_the_current_suite_version():
    from bench.nightly.suite import load_suite

    docs = (ROOT / "docs/nightly.md").read_text()
    version = load_suite("default").version
    assert f"version = {version} " in docs and f"suite default v{version} (quick)" in docs
    # The compare example quotes recorded A/A fixtures, made with the suite of their day.
    current = re.sub(r"```\n\$ hotbench compare tests/fixtures/.*?```", "", docs, flags=re.S)
    assert not re.search(rf"suite default v(?!{version}\b)\d+", current), "an old suite version is quoted"


def test_run_help_says_where_results_go():
    import argparse

    from bench.cli import run

    parser = argparse.ArgumentParser()
    run.set_argparser(parser)
    assert "DIR/<run-id>/" in parser.format_help().replace("\n", " ").replace("  ", " ")


def _declared() -> set[str]:
    deps = list(PYPROJECT["project"]["dependencies"])
    for extra in PYPROJECT["project"].get("optional-dependencies", {}).values():
        deps += extra
    names = {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].strip().lower().replace("-", "_") for d in deps}
    return names | {"llvmlite"} if "numba" in names else names  # numba brings llvmlite


def test_every_import_is_declared():
    assert PYPROJECT["project"]["requires-python"].startswith(">=3.11")  # tomllib, everywhere it is used
    declared, ours = _declared(), {"bench", "analysis", "workloads"}
    undeclared = {}
    for package in ours:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in ours and top.lower() not in declared:
                        undeclared.setdefault(top, str(path.relative_to(ROOT)))
    assert not undeclared, f"imported but not in pyproject.toml: {undeclared}"
