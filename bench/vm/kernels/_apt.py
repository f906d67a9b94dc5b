"""A private apt: Debian suites this machine does not follow (trixie-backports, sid), read
through the mirror the machine's own apt sources name, without touching the system's apt
state. Own sources list, lists, cache and dpkg status under ``~/.cache/hotbench/apt/``;
``Dir::Etc::SourceParts`` points at an empty directory so the system's sources are ignored,
and nothing is ever installed: packages are only downloaded (``apt-get download``).

Failures raise ``HotbenchError``: no apt-get, no usable mirror in the system sources,
``apt-get update`` failing with no lists to fall back on, a package that is not there.
"""

from __future__ import annotations

import glob
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.errors import HotbenchError

DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
SUITES = ("trixie-backports", "sid")
LISTS_MAX_AGE = 6 * 3600  # refresh the private lists after this many seconds


@dataclass(frozen=True)
class Source:
    types: tuple[str, ...]
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None = None
    enabled: bool = True


def parse_deb822(text: str) -> list[Source]:
    """Stanzas of a ``.sources`` file (deb822: ``Key: value`` lines, blank-line separated,
    ``#`` comments; continuation lines start with a space)."""
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:
                fields[key] += "\n" + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "uris" not in fields:
            continue
        signed = fields.get("signed-by", "").strip()
        out.append(Source(tuple(fields.get("types", "deb").split()), fields["uris"].split()[0],
                          tuple(fields.get("suites", "").split()), tuple(fields.get("components", "").split()),
                          signed if signed.startswith("/") and "\n" not in signed else None,
                          fields.get("enabled", "yes").lower() not in ("no", "false", "0")))
    return out


_LIST_LINE = re.compile(r"^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$")


def parse_one_line(text: str) -> list[Source]:
    """Lines of a classic ``sources.list``: ``deb [options] URI suite component...``."""
    out = []
    for line in text.splitlines():
        m = _LIST_LINE.match(line.strip())
        if not m:
            continue
        options = dict(o.split("=", 1) for o in (m[2] or "").split() if "=" in o)
        out.append(Source((m[1],), m[3], (m[4],), tuple(m[5].split()), options.get("signed-by")))
    return out


def system_sources(etc: Path = Path("/etc/apt")) -> list[Source]:
    found: list[Source] = []
    for path in [str(etc / "sources.list"), *sorted(glob.glob(str(etc / "sources.list.d" / "*")))]:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        if path.endswith(".sources"):
            found += parse_deb822(text)
        elif path.endswith(".list"):
            found += parse_one_line(text)
    return found


def debian_mirror(sources: list[Source]) -> Source:
    """The first enabled binary source of the main archive (not the security archive, which
    carries no backports or sid)."""
    for s in sources:
        if not s.enabled or "deb" not in s.types:
            continue
        if any(suite.endswith(("-security", "/updates")) for suite in s.suites) or s.uri.rstrip("/").endswith(
                "-security"):
            continue
        return s
    raise HotbenchError("no Debian mirror in this machine's apt sources (/etc/apt/sources.list, "
                        "/etc/apt/sources.list.d/): hotbench kernel fetch reads the mirror from there")


class PrivateApt:
    """apt-get / apt-cache with every path under *root* and the given suites of *mirror*."""

    def __init__(self, root: Path, mirror: Source, suites: tuple[str, ...] = SUITES):
        self.root, self.mirror, self.suites = root, mirror, suites
        for sub in ("etc/sources.list.d", "etc/preferences.d", "lists/partial", "cache/archives/partial",
                    "state"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        keyring = mirror.signed_by or DEFAULT_KEYRING
        (root / "etc" / "sources.list").write_text("".join(
            f"deb [signed-by={keyring}] {mirror.uri} {suite} main\n" for suite in suites))
        status = root / "state" / "status"
        if not status.exists():
            status.write_text("")

    def options(self) -> list[str]:
        r = self.root
        opts = {
            "Dir::Etc::SourceList": r / "etc" / "sources.list",
            "Dir::Etc::SourceParts": r / "etc" / "sources.list.d",
            "Dir::Etc::Preferences": r / "etc" / "preferences",
            "Dir::Etc::PreferencesParts": r / "etc" / "preferences.d",
            "Dir::State::Lists": r / "lists",
            "Dir::State::status": r / "state" / "status",
            "Dir::Cache": r / "cache",
            "APT::Architecture": "amd64",
            "APT::Architectures::": "amd64",
            "Acquire::Languages": "none",
            "APT::Sandbox::User": "root",
        }
        return [arg for k, v in opts.items() for arg in ("-o", f"{k}={v}")]

    def _run(self, tool: str, args: list[str], cwd: Path | None = None) -> str:
        try:
            proc = subprocess.run([tool, *self.options(), *args], cwd=cwd, capture_output=True, text=True)
        except FileNotFoundError:
            raise HotbenchError(f"{tool} not found: hotbench kernel fetch needs a Debian host") from None
        if proc.returncode != 0:
            last = [line for line in proc.stderr.splitlines() if line.strip()] or ["(no message)"]
            raise HotbenchError(f"{tool} {' '.join(args[:2])} failed: {last[-1].strip()}")
        return proc.stdout

    def _lists_age(self) -> float | None:
        lists = list((self.root / "lists").glob("*_Packages*"))
        return time.time() - min(p.stat().st_mtime for p in lists) if lists else None

    def update(self, max_age: float = LISTS_MAX_AGE, log=None) -> None:
        """Refresh the package lists when older than *max_age*; on failure keep old lists."""
        age = self._lists_age()
        if age is not None and age < max_age:
            return
        try:
            self._run("apt-get", ["-qq", "update"])
        except HotbenchError as e:
            if age is None:
                raise
            if log:
                print(f"warning: {e}; using package lists from {age / 3600:.1f} h ago", file=log)

    def names(self, prefix: str) -> list[str]:
        return self._run("apt-cache", ["pkgnames", prefix]).split()

    def version(self, package: str) -> str | None:
        """The candidate version of *package*, None when no suite has it."""
        try:
            out = self._run("apt-cache", ["show", "--no-all-versions", package])
        except HotbenchError:
            return None
        m = re.search(r"^Version: (\S+)", out, re.M)
        return m[1] if m else None

    def download(self, packages: list[str], dest: Path) -> list[Path]:
        """Download the candidate .debs of *packages* into *dest*; return their paths."""
        dest.mkdir(parents=True, exist_ok=True)
        self._run("apt-get", ["-qq", "download", *packages], cwd=dest)
        got = sorted(p for p in dest.glob("*.deb") if p.name.split("_", 1)[0] in packages)
        if len(got) < len(packages):
            raise HotbenchError(f"apt-get download left {len(got)} of {len(packages)} packages in {dest}")
        return got
