"""Build a test kernel with the project's kconfig fragment: ``hotbench kernel build``.

From a source tree (``--source DIR``, built out of tree in the cache, incrementally) or from
Debian's ``linux-source-VERSION`` package (``--debian VERSION``, unpacked, built, then the
tree removed). Config: ``x86_64_defconfig`` + ``kvm_guest.config`` + ``bench/kernel/hotbench.config``,
``olddefconfig``, then every fragment option is checked: options the source does not know are
named (not fatal: USERFAULTFD_RWP before 7.3), options it knows but dropped are an error.
Cache key: source version (package version, or kernel version + tree path) + fragment hash.

Failures raise ``HotbenchError``: missing build tools, a fragment option that did not stick,
``make`` failing (its last lines are printed and the full log kept).
"""

from __future__ import annotations

import collections
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.errors import HotbenchError
from bench.vm.kernels import Kernel, Stopwatch, _fmt, cache_dir, kconfig, lookup, new_entry, require_tools

BUILD_TOOLS = ("gcc", "make", "flex", "bison", "bc", "perl", "tar", "xz")
BUILD_HEADERS = {"/usr/include/gelf.h": "libelf-dev", "/usr/include/openssl/opensslv.h": "libssl-dev"}
PROGRESS_EVERY = 60.0  # seconds between progress lines when stderr is not a terminal


def check_build_deps() -> None:
    require_tools(*BUILD_TOOLS)
    missing = [pkg for header, pkg in BUILD_HEADERS.items() if not os.path.exists(header)]
    if missing:
        raise HotbenchError(f"kernel build headers missing ({', '.join(missing)}): run tools/setup-system")


def _make(src: Path, out: Path, *targets: str, log=None) -> str:
    proc = subprocess.run(["make", "-C", str(src), f"O={out}", *targets], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        for line in lines[-15:]:
            print(f"  {line}", file=log or sys.stderr)
        raise HotbenchError(f"make {' '.join(targets)} failed in {src}: {lines[-1] if lines else proc.returncode}")
    return proc.stdout


def configure(src: Path, out: Path, fragment_text: str, watch: Stopwatch) -> kconfig.Verdict:
    """Write *out*/.config: defconfig + kvm_guest.config + fragment, olddefconfig; check it."""
    out.mkdir(parents=True, exist_ok=True)
    _make(src, out, "x86_64_defconfig", log=watch.stream)
    _make(src, out, "kvm_guest.config", log=watch.stream)
    fragment = kconfig.parse_fragment(fragment_text)
    config_path = out / ".config"
    config_path.write_text(kconfig.apply_fragment(config_path.read_text(), fragment))
    _make(src, out, "olddefconfig", log=watch.stream)
    verdict = kconfig.verify(fragment, kconfig.read_config(config_path), kconfig.kconfig_symbols(src))
    if verdict.unknown:
        watch.say("not in this source (skipped): " + ", ".join(f"CONFIG_{o.option}" for o in verdict.unknown))
    final = kconfig.read_config(config_path)
    slim = [o for o in verdict.dropped if o.value == "n"]  # something selects it: only costs build time
    if slim:
        watch.say("warning: still enabled (selected by another option): " + ", ".join(
            f"CONFIG_{o.option}" for o in slim))
    needed = [o for o in verdict.dropped if o.value != "n"]
    if needed:
        raise HotbenchError("fragment options did not stick after olddefconfig (unmet dependencies?): " + ", ".join(
            f"CONFIG_{o.option}={o.value} (got {final.get(o.option, 'n')})" for o in needed))
    return verdict


def compile_image(src: Path, out: Path, jobs: int, watch: Stopwatch) -> float:
    """``make -jN bzImage`` with a progress line; full output in *out*/build.log."""
    log_path = out / "build.log"
    start = time.monotonic()
    tail: collections.deque[str] = collections.deque(maxlen=30)
    tty = watch.stream.isatty()
    count, last_report = 0, start
    with open(log_path, "w") as log:
        proc = subprocess.Popen(["make", "-C", str(src), f"O={out}", f"-j{jobs}", "bzImage"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            tail.append(line.rstrip())
            if line.startswith("  CC "):
                count += 1
            now = time.monotonic()
            if tty and now - last_report > 1 or not tty and now - last_report > PROGRESS_EVERY:
                last_report = now
                text = f"kernel build: {_fmt(now - start)}, {count} files compiled, {line.strip()[:60]}"
                watch.stream.write(f"\r{text:<110}" if tty else text + "\n")
                watch.stream.flush()
        status = proc.wait()
    if tty:
        watch.stream.write("\r" + " " * 110 + "\r")
    if status != 0:
        for line in tail:
            print(f"  {line}", file=watch.stream)
        raise HotbenchError(f"kernel build failed (make exit {status}); full log: {log_path}")
    return time.monotonic() - start


def _source_version(src: Path) -> str:
    return subprocess.run(["make", "-s", "-C", str(src), "kernelversion"], capture_output=True, text=True,
                          check=True).stdout.strip()


def build_tree(src: Path, out: Path, key: str, meta: dict, jobs: int, watch: Stopwatch) -> Kernel:
    """Configure and build *src* into *out*, then cache the image as entry *key*."""
    text = kconfig.fragment_text()
    with watch.stage("configure"):
        verdict = configure(src, out, text, watch)
    seconds = compile_image(src, out, jobs, watch)
    watch.stages["compile"] = seconds
    release = _make(src, out, "-s", "kernelrelease").strip()
    watch.say(f"bzImage {release} built in {_fmt(seconds)} with -j{jobs}")
    meta.update(release=release, fragment_sha256=kconfig.fragment_hash(text), build_seconds=round(seconds, 1),
                jobs=jobs, unknown_options=[o.option for o in verdict.unknown])
    with new_entry(key, meta) as entry:
        shutil.copy2(out / "arch" / "x86" / "boot" / "bzImage", entry / "vmlinuz")
        shutil.copy2(out / ".config", entry / "config")
    kernel = lookup(key)
    assert kernel is not None
    return kernel


def build_source(src: Path, jobs: int | None = None, log=None) -> Kernel:
    """Build a developer's tree out of tree (make O=...), reusing the object directory."""
    src = src.resolve()
    if not (src / "Makefile").is_file() or not (src / "Kconfig").is_file():
        raise HotbenchError(f"{src} is not a kernel source tree (no Makefile and Kconfig)")
    check_build_deps()
    watch = Stopwatch("kernel build", log)
    version = _source_version(src)
    tag = hashlib.sha256(str(src).encode()).hexdigest()[:8]
    key = f"build-src-{version}-{tag}-{kconfig.fragment_hash()}"
    out = cache_dir() / "build" / key
    with _build_lock(key, watch):
        return build_tree(src, out, key, {"kind": "build", "source": str(src), "version": version},
                          jobs or os.cpu_count() or 1, watch)


@contextmanager
def _build_lock(key: str, watch: Stopwatch) -> Iterator[None]:
    """One build per cache key at a time. A second build of the same key (another shell, a test
    session) would otherwise delete or share the first one's object directory mid-build; it waits
    here instead, and then finds the finished entry in the cache."""
    path = cache_dir() / "build" / f"{key}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            watch.say(f"another process is building {key}; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build_debian(version: str, jobs: int | None = None, log=None) -> Kernel:
    """Build Debian's ``linux-source-VERSION``; cached by package version + fragment hash."""
    from bench.vm.kernels.debian import private_apt

    watch = Stopwatch("kernel build", log)
    apt = private_apt()
    package = f"linux-source-{version}"
    with watch.stage("package lists"):
        apt.update(log=watch.stream)
        pkg_version = apt.version(package)
    if pkg_version is None:
        raise HotbenchError(f"no package {package} in {', '.join(apt.suites)}")
    key = re.sub(r"[^\w.+-]", "_", f"build-debian-{pkg_version}-{kconfig.fragment_hash()}")
    with _build_lock(key, watch):
        cached = lookup(key)  # looked up under the lock: a build that held it may have just finished
        if cached:
            watch.say(f"{package} {pkg_version} with fragment {kconfig.fragment_hash()} cached")
            return cached
        return _build_debian_locked(package, pkg_version, key, apt, jobs, watch)


def _build_debian_locked(package: str, pkg_version: str, key: str, apt, jobs: int | None,
                         watch: Stopwatch) -> Kernel:
    check_build_deps()
    require_tools("dpkg-deb")
    work = cache_dir() / "build" / key
    shutil.rmtree(work, ignore_errors=True)
    downloads = cache_dir() / "downloads"
    try:
        pattern = re.sub(r"[^\w.+-]", "*", pkg_version)  # apt escapes '~' and ':' in file names
        debs = sorted(downloads.glob(f"{package}_{pattern}_*.deb"))
        if not debs:
            with watch.stage(f"download {package} {pkg_version}"):
                debs = apt.download([package], downloads)
        with watch.stage("unpack"):
            src = _unpack_source(debs[0], work)
        kernel = build_tree(src, work / "out", key, {"kind": "build", "source": f"{package} {pkg_version}",
                                                   "version": pkg_version}, jobs or os.cpu_count() or 1, watch)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for old in downloads.glob(f"{package}_*.deb"):  # only the newest is worth keeping
        if old not in debs:
            old.unlink()
    return kernel


def _unpack_source(deb: Path, work: Path) -> Path:
    """Extract the source tarball inside a linux-source .deb into *work*; return the tree."""
    pkgroot = work / "pkg"
    pkgroot.mkdir(parents=True)
    try:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(pkgroot)], check=True, capture_output=True)
        tarballs = sorted((pkgroot / "usr" / "src").glob("linux-source-*.tar.*"))
        if not tarballs:
            raise HotbenchError(f"{deb.name} holds no usr/src/linux-source-*.tar.*")
        subprocess.run(["tar", "-xf", str(tarballs[0]), "-C", str(work)], check=True, capture_output=True)
    except subprocess.CalledProcessError as e:
        raise HotbenchError(f"unpacking {deb.name} failed: {e.stderr.decode(errors='replace').strip()}") from e
    shutil.rmtree(pkgroot)
    trees = [p for p in work.iterdir() if p.is_dir() and (p / "Makefile").is_file()]
    if len(trees) != 1:
        raise HotbenchError(f"unexpected layout in {tarballs[0].name}: {[p.name for p in work.iterdir()]}")
    return trees[0]
