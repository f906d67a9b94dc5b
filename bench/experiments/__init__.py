"""Named experiments: one TOML file per question from the RWP review thread (``*.toml`` here).

A spec says what to ask and what to run; ``analysis.answers.<name>`` turns the results into
the one-paragraph answer. Format (checked on load, typos refused)::

    title = "one line for 'hotbench experiment --list'"
    question = "the question as the list asked it"
    asked_by = "who asked, where"                 # optional
    figures = ["cost-vs-size"]                    # 'hotbench plot --list' names, drawn into the report
    vm_options = ["--numa-nodes", "2"]            # optional: 'hotbench vm' options the guest needs

    [[steps]]                                     # run in order, each into its own directory
    name = "sweep"
    command = "run"                               # run | evict | micro
    args = { trackers = "idle-page,rwp", size = "256M,1G" }   # long options; true = a bare flag
    quick = { size = "32M,64M" }                  # --quick: these keys replace args' (a key set
                                                  # to false is dropped)

``trackers`` (run) and ``variant`` (evict) are filtered to what this kernel has; the rest are
recorded with the probe's reason and the report names the ``hotbench vm`` kernel that has them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import HotbenchError

SPEC_DIR = Path(__file__).resolve().parent
COMMANDS = ("run", "evict", "micro")
_TOP = {"title", "question", "asked_by", "figures", "vm_options", "steps"}
_STEP = {"name", "command", "args", "quick"}


@dataclass(frozen=True)
class Step:
    name: str
    command: str
    args: dict
    quick: dict = field(default_factory=dict)

    def options(self, quick: bool) -> dict:
        """The step's long options, with --quick's replacements applied (False drops a key)."""
        merged = {**self.args, **(self.quick if quick else {})}
        return {key: value for key, value in merged.items() if value is not False}


@dataclass(frozen=True)
class Spec:
    name: str
    title: str
    question: str
    steps: list[Step]
    asked_by: str = ""
    figures: list[str] = field(default_factory=list)
    vm_options: list[str] = field(default_factory=list)


def names() -> list[str]:
    return sorted(p.stem for p in SPEC_DIR.glob("*.toml"))


def load(name: str) -> Spec:
    """A shipped experiment by name, or any spec file by path (``my-question.toml``)."""
    path = Path(name) if name.endswith(".toml") else SPEC_DIR / f"{name}.toml"
    name = path.stem
    if not path.is_file():
        raise HotbenchError(f"unknown experiment {name!r}; 'hotbench experiment --list' shows them: "
                            f"{', '.join(names())}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise HotbenchError(f"{path.name}: {e}") from None
    return _check(name, raw)


def _check(name: str, raw: dict) -> Spec:
    where = f"experiment {name}"
    if unknown := set(raw) - _TOP:
        raise HotbenchError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    if not isinstance(raw.get("title"), str) or not isinstance(raw.get("question"), str):
        raise HotbenchError(f"{where}: needs a title and a question")
    steps = [_step(where, i, s) for i, s in enumerate(raw.get("steps") or [])]
    if not steps or len({s.name for s in steps}) != len(steps):
        raise HotbenchError(f"{where}: needs [[steps]] with distinct names")
    return Spec(name=name, title=raw["title"], question=raw["question"].strip(), steps=steps,
                asked_by=raw.get("asked_by", ""), figures=list(raw.get("figures", [])),
                vm_options=[str(o) for o in raw.get("vm_options", [])])


def _step(where: str, index: int, raw: dict) -> Step:
    if unknown := set(raw) - _STEP:
        raise HotbenchError(f"{where}: step {index}: unknown key(s) {', '.join(sorted(unknown))}")
    if raw.get("command") not in COMMANDS:
        raise HotbenchError(f"{where}: step {index}: command must be one of {', '.join(COMMANDS)}")
    if not isinstance(raw.get("name"), str) or not raw["name"].isidentifier():
        raise HotbenchError(f"{where}: step {index}: needs a name (letters, digits, _)")
    return Step(name=raw["name"], command=raw["command"], args=dict(raw.get("args", {})),
                quick=dict(raw.get("quick", {})))
