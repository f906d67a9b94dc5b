"""Debian's kernel packages as test kernels: ``hotbench kernel fetch debian[:VERSION]``.

Since 7.x Debian splits a kernel into ``linux-binary-ABI`` (the image),
``linux-modules-ABI`` and ``linux-base-ABI`` (config, ``modules.builtin``); older kernels
come whole in ``linux-image-ABI-unsigned``. Both layouts are handled. The modules package
ships no ``modules.dep``: ``depmod -b`` makes one, so ``modprobe`` works in the guest.

The cache key is the ABI name plus the package version, so a rebuilt package is a new entry.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.errors import HotbenchError
from bench.vm.kernels import Kernel, Stopwatch, _apt, cache_dir, lookup, new_entry, require_tools

DEFAULT_VERSION = "7.3"
FLAVOUR = "amd64"
# 7.3.4+deb13-amd64, 6.1.0-37-amd64, 6.1.0-0.deb11.13-amd64; not -cloud-amd64 or -rt-amd64
_ABI = re.compile(rf"^linux-(?:binary|binary-unsigned|image)-(\d+\.\d+(?:\.\d+)?(?:[-+][\w.]*)?-{FLAVOUR})"
                  r"(?:-unsigned)?$")


def private_apt() -> _apt.PrivateApt:
    return _apt.PrivateApt(cache_dir() / "apt", _apt.debian_mirror(_apt.system_sources()))


def _version_key(abi: str) -> tuple:
    """'7.3.4+deb13-amd64' -> (7, 3, 4, 13): numeric parts, for picking the newest."""
    return tuple(int(n) for n in re.findall(r"\d+", abi.removesuffix(f"-{FLAVOUR}")))


def matching_abis(names: list[str], version: str) -> list[str]:
    """ABI names (``7.3.4+deb13-amd64``) among package *names* for upstream *version*
    ('7.3' or '7.3.4' or a full ABI), newest first."""
    abis = {m[1] for n in names if (m := _ABI.match(n))}
    wanted = [a for a in abis if a == version or a.startswith(version) and a[len(version)] in ".+-"]
    return sorted(wanted, key=_version_key, reverse=True)


def packages_for(abi: str, available: set[str]) -> list[str]:
    """The packages holding image, config and modules of *abi*, in the split or whole layout."""
    binary = next((p for p in (f"linux-binary-{abi}", f"linux-binary-unsigned-{abi}") if p in available), None)
    if binary:
        return [binary] + [p for p in (f"linux-modules-{abi}", f"linux-base-{abi}") if p in available]
    whole = next((p for p in (f"linux-image-{abi}-unsigned", f"linux-image-{abi}") if p in available), None)
    if whole is None:
        raise HotbenchError(f"no image package for {abi} (looked for linux-binary-{abi}, linux-image-{abi}-unsigned)")
    return [whole]


def _find(root: Path, *patterns: str) -> Path | None:
    for pattern in patterns:
        found = sorted(root.glob(pattern))
        if found:
            return found[0]
    return None


def fetch(spec: str = "debian", log=None) -> Kernel:
    """Fetch (or find cached) the kernel *spec* names: ``debian`` or ``debian:VERSION``."""
    kind, _, version = spec.partition(":")
    if kind != "debian":
        raise HotbenchError(f"unknown kernel source {kind!r}: only 'debian[:VERSION]' can be fetched")
    version = version or DEFAULT_VERSION
    watch = Stopwatch("kernel fetch", log)
    apt = private_apt()
    with watch.stage(f"package lists ({', '.join(apt.suites)} from {apt.mirror.uri})"):
        apt.update(log=watch.stream)
        names = apt.names("linux-")
    abis = matching_abis(names, version)
    if not abis:
        raise HotbenchError(f"no Debian kernel {version} for {FLAVOUR} in {', '.join(apt.suites)}")
    abi = abis[0]
    packages = packages_for(abi, set(names))
    pkg_version = apt.version(packages[0]) or "unknown"
    key = re.sub(r"[^\w.+-]", "_", f"debian-{abi}-{pkg_version}")
    cached = lookup(key)
    if cached:
        watch.say(f"{abi} ({pkg_version}) cached")
        return cached
    require_tools("dpkg-deb", "depmod")
    meta = {"kind": "debian", "release": abi, "version": pkg_version, "packages": packages}
    with new_entry(key, meta) as entry, tempfile.TemporaryDirectory(prefix=".dl-", dir=entry.parent) as tmp:
        with watch.stage(f"download {' '.join(packages)} {pkg_version}"):
            debs = apt.download(packages, Path(tmp) / "debs")
        unpacked = Path(tmp) / "root"
        with watch.stage("unpack"):
            for deb in debs:
                subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
            _arrange(unpacked, abi, entry)
        if (entry / "lib" / "modules" / abi).is_dir():
            with watch.stage("depmod"):
                proc = subprocess.run(["depmod", "-b", str(entry), abi], capture_output=True, text=True)
                if proc.returncode != 0 or not (entry / "lib" / "modules" / abi / "modules.dep").exists():
                    raise HotbenchError(f"depmod -b {entry} {abi} made no modules.dep: {proc.stderr.strip()}")
    kernel = lookup(key)
    assert kernel is not None
    return kernel


def _arrange(unpacked: Path, abi: str, entry: Path) -> None:
    """vmlinuz, config and lib/modules/ABI out of the unpacked packages into *entry*."""
    image = _find(unpacked, f"usr/lib/modules/{abi}/vmlinuz", f"boot/vmlinuz-{abi}", f"lib/modules/{abi}/vmlinuz")
    config = _find(unpacked, f"usr/lib/modules/{abi}/config", f"boot/config-{abi}")
    if image is None or config is None:
        raise HotbenchError(f"the {abi} packages hold no {'image' if image is None else 'config'} where expected")
    shutil.move(str(image), entry / "vmlinuz")
    shutil.copy2(config, entry / "config")
    moddir = _find(unpacked, f"usr/lib/modules/{abi}", f"lib/modules/{abi}")
    if moddir is not None and (moddir / "kernel").is_dir():
        (entry / "lib" / "modules").mkdir(parents=True)
        shutil.move(str(moddir), entry / "lib" / "modules" / abi)
