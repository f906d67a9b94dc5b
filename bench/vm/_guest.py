"""The guest side of ``hotbench vm``: a busybox-static initramfs whose generated ``/init``
loads the 9p/overlay modules a modular kernel needs, mounts the host root read-only over 9p
(``cache=loose``) under a tmpfs overlay, mounts the read-write shares at their host paths
(uncached, so host edits show and guest writes land at once), chroots, runs ``run.sh``
from the control share and writes its exit status there; right before the command it leaves
``started`` there, so the host knows on which side of that line a lost guest died.

Modules are found in a ``lib/modules/RELEASE`` tree by file name; their dependencies come
from each module's own ``.modinfo`` ``depends=`` (so a developer's tree needs no
``modules.dep``), and compressed modules (``.ko.xz``, ``.ko.gz``, ``.ko.zst``) are
decompressed on the host, so busybox ``insmod`` can load them on any kernel.

Failures raise ``HotbenchError`` naming the file (missing busybox, unreadable module).
"""

from __future__ import annotations

import gzip
import lzma
import os
import shlex
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.errors import HotbenchError

BUSYBOX = Path("/bin/busybox")  # Debian busybox-static
# What the guest init must be able to mount, in load order; any of them may be built in.
WANTED_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")
INIT_ERROR = "HOTBENCH-INIT-ERROR:"  # marks the one line the host reports when the init gives up
# The handshake: the init creates this file in the control share right before it runs the
# command. A guest lost without it died before the command started (the host may boot again);
# with it, the command's own kernel crashed (never retried). 9p writes reach the host before
# the syscall returns, so a panic a moment later cannot lose it.
STARTED, STATUS = "started", "status"
ROOT_TAG, CTL_TAG = "hbroot", "hbctl"
GUEST_CTL = "/run/hotbench-vm"  # the control share, in the chroot (/run/hotbench is the state journal's)
_9P = "trans=virtio,version=9p2000.L,msize=512000"


@dataclass(frozen=True)
class Share:
    """A host directory exported read-write to the guest at the same path."""

    tag: str
    path: str


def _modname(filename: str) -> str:
    """'9pnet_virtio.ko.xz' -> '9pnet_virtio' (kernel module names use '_' for '-')."""
    return filename.split(".ko", 1)[0].replace("-", "_")


def _module_files(moddir: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for dirpath, _dirs, files in os.walk(moddir / "kernel" if (moddir / "kernel").is_dir() else moddir):
        for f in files:
            if ".ko" in f:
                found.setdefault(_modname(f), Path(dirpath) / f)
    return found


def _builtin(moddir: Path) -> set[str]:
    try:
        text = (moddir / "modules.builtin").read_text()
    except OSError:
        return set()
    return {_modname(Path(line.strip()).name) for line in text.splitlines() if line.strip()}


def read_module(path: Path) -> bytes:
    """The uncompressed ELF of a module file."""
    try:
        if path.name.endswith(".xz"):
            return lzma.decompress(path.read_bytes())
        if path.name.endswith(".gz"):
            return gzip.decompress(path.read_bytes())
        if path.name.endswith(".zst"):
            return subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True).stdout
        return path.read_bytes()
    except (OSError, lzma.LZMAError, subprocess.CalledProcessError) as e:
        raise HotbenchError(f"cannot read kernel module {path}: {e}") from e


def modinfo_depends(elf: bytes) -> list[str]:
    """``depends=`` of a module's ``.modinfo`` section (ELF64 little-endian)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        return []
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)

    def section(i: int) -> tuple[int, int, int]:
        name, = struct.unpack_from("<I", elf, shoff + i * shentsize)
        offset, size = struct.unpack_from("<QQ", elf, shoff + i * shentsize + 0x18)
        return name, offset, size

    _, str_off, _ = section(shstrndx)
    for i in range(shnum):
        name, offset, size = section(i)
        end = elf.index(b"\0", str_off + name)
        if elf[str_off + name:end] == b".modinfo":
            for item in elf[offset:offset + size].split(b"\0"):
                if item.startswith(b"depends="):
                    return [d for d in item[8:].decode().split(",") if d]
    return []


def needed_modules(moddir: Path | None, wanted: tuple[str, ...] = WANTED_MODULES) -> list[tuple[str, bytes]]:
    """(name, uncompressed ELF) of every module to load for *wanted*, dependencies first.

    Wanted modules absent from the tree are taken to be built in (the guest says so if not)."""
    if moddir is None:
        return []
    files, builtin = _module_files(moddir), _builtin(moddir)
    order: list[tuple[str, bytes]] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name in builtin or name not in files:
            return
        seen.add(name)
        elf = read_module(files[name])
        for dep in modinfo_depends(elf):
            visit(dep.replace("-", "_"))
        order.append((name, elf))

    for name in wanted:
        visit(name)
    return order


def init_script(modules: list[str], shares: list[Share], release_modules: tuple[str, str] | None,
                config: str | None, release: str | None) -> str:
    """The guest's /init (busybox sh). *release_modules*: (guest release dir, host path of the
    module tree) to bind at /lib/modules/RELEASE; *config* a host path copied to /boot."""
    q = shlex.quote
    lines = [
        "#!/bin/busybox sh",
        "# Generated by hotbench vm (bench/vm/_guest.py): mount the host, run one command, report its status.",
        "/bin/busybox mkdir -p /bin /proc /sys /dev /mnt/lower /mnt/rw /newroot",
        "/bin/busybox --install -s /bin",
        "export PATH=/bin",
        "mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev",
        "hostname hotbench-vm",
        f'fail() {{ echo "{INIT_ERROR} $*"; sync; poweroff -f; }}',
    ]
    for m in modules:
        lines.append(f"insmod /modules/{m}.ko || fail 'insmod {m} failed (module from another kernel build?)'")
    lines += [
        f"mount -t 9p -o {_9P},cache=loose,ro {ROOT_TAG} /mnt/lower || fail 'cannot mount the host root over 9p: "
        "the kernel needs CONFIG_9P_FS, CONFIG_NET_9P_VIRTIO and CONFIG_VIRTIO_PCI (built in, or pass --modules DIR)'",
        "mount -t tmpfs -o mode=0755 tmpfs /mnt/rw && mkdir /mnt/rw/upper /mnt/rw/work",
        "mount -t overlay -o lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work overlay /newroot"
        " || fail 'cannot mount the overlay root: the kernel needs CONFIG_OVERLAY_FS (built in, or pass --modules DIR)'",
        "cd /newroot",
        "mount -t proc proc proc; mount -t sysfs sysfs sys; mount -t devtmpfs devtmpfs dev",
        "mkdir -p dev/pts dev/shm; mount -t devpts devpts dev/pts; mount -t tmpfs tmpfs dev/shm",
        "mount -t tmpfs -o mode=1777 tmpfs tmp; mount -t tmpfs -o mode=0755 tmpfs run",
        "mount -t debugfs debugfs sys/kernel/debug 2>/dev/null",
        "mount -t cgroup2 cgroup2 sys/fs/cgroup 2>/dev/null",
        f"mkdir -p .{GUEST_CTL} && mount -t 9p -o {_9P} {CTL_TAG} .{GUEST_CTL} || fail 'cannot mount the control share'",
    ]
    # Shares are uncached: the guest sees edits made on the host while it runs, and its
    # writes reach the host at once. Only the read-only root is cached (loose).
    for share in shares:  # after the tmpfs mounts, so a share under /tmp stays visible
        lines.append(f"mkdir -p .{q(share.path)} && mount -t 9p -o {_9P} {share.tag} .{q(share.path)}"
                     f" || fail {q('cannot mount share ' + share.path)}")
    if release_modules:
        rel, host = release_modules
        lines.append(f"mkdir -p lib/modules/{q(rel)} && mount --bind /mnt/lower{q(host)} lib/modules/{q(rel)}")
    if config and release:
        lines.append(f"mkdir -p boot && cp /mnt/lower{q(config)} boot/config-{q(release)}")
    lines += [
        "cd /",
        f": > /newroot{GUEST_CTL}/{STARTED}",
        f"chroot /newroot /bin/sh {GUEST_CTL}/run.sh",
        "rc=$?",
        "sync",
        f"echo $rc > /newroot{GUEST_CTL}/{STATUS}.tmp && mv /newroot{GUEST_CTL}/{STATUS}.tmp"
        f" /newroot{GUEST_CTL}/{STATUS}",
        "sync",
        "poweroff -f",
        "",
    ]
    return "\n".join(lines)


def run_script(command: list[str], env: dict[str, str], cwd: str, fallback_cwd: str) -> str:
    """The chrooted shell script: environment, working directory, then the user's command."""
    q = shlex.quote
    lines = ["# Generated by hotbench vm: runs inside the guest's chroot."]
    lines += [f"export {k}={q(v)}" for k, v in env.items()]
    lines.append(f"cd {q(cwd)} 2>/dev/null || cd {q(fallback_cwd)}")
    lines.append(" ".join(q(c) for c in command))
    return "\n".join(lines) + "\n"


def build_initramfs(dest: Path, modules: list[tuple[str, bytes]], init: str) -> Path:
    """Write a newc cpio (uncompressed: the kernel reads it at once) to *dest*."""
    if not BUSYBOX.is_file():
        raise HotbenchError(f"{BUSYBOX} not found: install Debian's busybox-static (tools/setup-system)")
    if not shutil.which("cpio"):
        raise HotbenchError("cpio not found: install it (tools/setup-system)")
    with tempfile.TemporaryDirectory(prefix="hotbench-initramfs-") as tmp:
        root = Path(tmp)
        (root / "bin").mkdir()
        (root / "modules").mkdir()
        shutil.copy2(BUSYBOX, root / "bin" / "busybox")
        for name, elf in modules:
            (root / "modules" / f"{name}.ko").write_bytes(elf)
        (root / "init").write_text(init)
        (root / "init").chmod(0o755)
        names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
        with open(dest, "wb") as out:
            subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"], cwd=root, check=True,
                           input="\n".join(names).encode(), stdout=out)
    return dest
