"""Kernel ``.config`` files and the project's kconfig fragment (``bench/kernel/hotbench.config``).

Reads configs (``CONFIG_X=y``, ``# CONFIG_X is not set``), says which hotbench mechanisms a
config enables, and checks that every fragment option stuck after ``olddefconfig`` —
telling options the source does not know from options it knows but dropped (an unmet
dependency). Pure functions on text, plus one walk of a source tree's Kconfig files.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

FRAGMENT = Path(__file__).resolve().parents[2] / "kernel" / "hotbench.config"

_SET = re.compile(r"^CONFIG_(\w+)=(.*)$")
_UNSET = re.compile(r"^# CONFIG_(\w+) is not set")


def parse_config(text: str) -> dict[str, str]:
    """``{"USERFAULTFD": "y", "DAMON": "n", "LOCALVERSION": '""', ...}`` (unset options read "n")."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if m := _SET.match(line):
            values[m[1]] = m[2]
        elif m := _UNSET.match(line):
            values[m[1]] = "n"
    return values


def read_config(path: Path) -> dict[str, str]:
    return parse_config(path.read_text(errors="replace"))


def enabled(config: dict[str, str], option: str) -> bool:
    return config.get(option, "n") in ("y", "m")


def mechanism_options() -> dict[str, tuple[str, ...]]:
    """Mechanism -> the config options it needs, all of them (``Tracker.kconfig``), in probe order.
    Mechanisms no config enables (an ABI never merged) are left out."""
    from bench import trackers

    return {name: cls.kconfig for name, cls in trackers.mechanisms().items() if cls.kconfig is not None}


def mechanisms(config: dict[str, str]) -> list[str]:
    """The mechanisms whose every needed option this config sets."""
    return [name for name, options in mechanism_options().items() if all(enabled(config, o) for o in options)]


@dataclass(frozen=True)
class FragmentOption:
    option: str  # without CONFIG_
    value: str   # "y", "m", "n" or a literal
    why: str     # the comment above it: which mechanism needs it


def parse_fragment(text: str) -> list[FragmentOption]:
    """Options of a fragment, each with the ``#`` comment block above it (a block runs to the
    next blank line, so one comment can cover several options)."""
    out: list[FragmentOption] = []
    comment: list[str] = []
    after_option = False
    for raw in text.splitlines():
        line = raw.strip()
        if m := _SET.match(line):
            out.append(FragmentOption(m[1], m[2], " ".join(comment)))
            after_option = True
        elif m := _UNSET.match(line):
            out.append(FragmentOption(m[1], "n", " ".join(comment)))
            after_option = True
        elif line.startswith("#"):
            if after_option:
                comment = []
            comment.append(line.lstrip("#").strip())
            after_option = False
        elif not line:
            comment, after_option = [], False
    return out


def fragment_text() -> str:
    return FRAGMENT.read_text()


def fragment_hash(text: str | None = None) -> str:
    """12 hex digits of the fragment's sha256: part of a built kernel's cache key."""
    return hashlib.sha256((fragment_text() if text is None else text).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Verdict:
    dropped: list[FragmentOption]  # the source knows them, olddefconfig did not keep the value
    unknown: list[FragmentOption]  # no such symbol in this source


def verify(fragment: list[FragmentOption], config: dict[str, str], known: set[str] | None) -> Verdict:
    """Compare the fragment with the final ``.config``. *known*: Kconfig symbols of the source
    (None: treat every option as known)."""
    dropped, unknown = [], []
    for opt in fragment:
        got = config.get(opt.option, "n")
        ok = (got in ("n", "") if opt.value == "n" else got == opt.value)
        if ok:
            continue
        if known is not None and opt.option not in known:
            if opt.value != "n":
                unknown.append(opt)
        else:
            dropped.append(opt)
    return Verdict(dropped, unknown)


_SYMBOL = re.compile(r"^\s*(?:menu)?config\s+(\w+)", re.M)


def kconfig_symbols(srctree: Path) -> set[str]:
    """Every symbol any Kconfig file in *srctree* defines."""
    found: set[str] = set()
    for dirpath, dirs, files in os.walk(srctree):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for f in files:
            if f.startswith("Kconfig"):
                try:
                    found.update(_SYMBOL.findall((Path(dirpath) / f).read_text(errors="replace")))
                except OSError:
                    pass
    return found


def apply_fragment(config_text: str, fragment: list[FragmentOption]) -> str:
    """*config_text* with every fragment option set as the fragment says (later wins in Kconfig,
    but rewriting keeps the file free of duplicate-assignment warnings)."""
    names = {o.option for o in fragment}
    kept = [line for line in config_text.splitlines()
            if not ((m := _SET.match(line.strip()) or _UNSET.match(line.strip())) and m[1] in names)]
    kept += [f"# CONFIG_{o.option} is not set" if o.value == "n" else f"CONFIG_{o.option}={o.value}"
             for o in fragment]
    return "\n".join(kept) + "\n"
