"""Run-level kernel settings the list asked about (interplay switches): MGLRU on/off for
idle page tracking, NUMA balancing on/off for RWP, THP mode, fault-around size for the
zap-based trackers. Set for the run through ``sysfs.Knobs`` (restored afterwards, also on
errors and signals) and recorded in the manifest, so a result always says which regime it
was measured under.

``--fault-around`` writes debugfs ``fault_around_bytes`` (mm/memory.c; the kernel takes
up to ``PTRS_PER_PTE`` pages and rounds down to a power of two, so only powers of two from
one page up are accepted here, and the value read back is recorded). debugfs is often not
mounted (it is not on the 6.18 host this was written on). Then the setting mounts it at
``/sys/kernel/debug`` for the run and unmounts it afterwards — after the knob is restored,
also on errors, SIGINT/SIGTERM/SIGHUP and at interpreter exit — rather than refusing: the
knob has no other door, a debugfs mount changes nothing but its own visibility, and
leaving the system exactly as found is what ``Knobs`` already promises for the knob itself.
A debugfs that was already mounted is used and left alone. Without CONFIG_DEBUG_FS (no
``debugfs`` in /proc/filesystems), with debugfs restricted (``debugfs=``), or under kernel
lockdown (debugfs mounts, but every open fails with EPERM: the case on that 6.18 host) the
option is refused in one line, after unmounting again.
"""

from __future__ import annotations

import atexit
import errno
import os
import subprocess
import sys
from contextlib import ExitStack, contextmanager
from typing import Callable, Iterator, NamedTuple

from bench.errors import HotbenchError
from bench.kernel import mglru, procfs, sysfs

FAULT_AROUND_BYTES = mglru.DEBUGFS + "/fault_around_bytes"


class Setting(NamedTuple):
    path: str
    choices: dict[str, str]  # named choice -> value written
    parse: Callable[[str], str] | None = None  # any other value -> value written (HotbenchError if bad)
    debugfs: bool = False  # the knob lives in debugfs: mounted for the run when it is not


def _fault_around_bytes(text: str) -> str:
    from bench.arena import BASE_PAGE, parse_size

    try:
        n = parse_size(text)
    except HotbenchError:
        n = 0
    if n < BASE_PAGE or n & (n - 1):
        raise HotbenchError(f"--fault-around must be a power of two of at least one page, e.g. 4K (off) or 64K "
                            f"(the kernel default), got {text!r}")
    return str(n)


# name -> Setting(knob path, {choice: value written}, ...)
SETTINGS: dict[str, Setting] = {
    "mglru": Setting(mglru.LRU_GEN_ENABLED, {"on": "y", "off": "n"}),
    "numa-balancing": Setting(procfs.NUMA_BALANCING, {"on": "1", "off": "0"}),
    "thp": Setting(sysfs.THP_ENABLED, {c: c for c in ("always", "madvise", "never")}),
    "fault-around": Setting(FAULT_AROUND_BYTES, {"4K": "4096", "64K": "65536"}, _fault_around_bytes, debugfs=True),
}


def value_of(name: str, choice: str) -> str:
    """What ``--name choice`` writes to the knob; HotbenchError (one line) for a bad choice."""
    setting = SETTINGS[name]
    if choice in setting.choices:
        return setting.choices[choice]
    if setting.parse is not None:
        return setting.parse(choice)
    raise HotbenchError(f"--{name} must be one of {', '.join(setting.choices)}, got {choice!r}")


def _debugfs_reason() -> str | None:
    """None when debugfs can be mounted here, else why not."""
    if "debugfs" not in (procfs.read_text(procfs.FILESYSTEMS) or "").split():
        return procfs.config_reason("no debugfs in /proc/filesystems", "CONFIG_DEBUG_FS")
    if not os.path.isdir(mglru.DEBUGFS):
        return f"no {mglru.DEBUGFS} directory to mount debugfs on"
    return None


def check_choices(requested: dict[str, str]) -> None:
    """HotbenchError (one line) for a choice no kernel accepts; what this kernel offers is ``validate``'s."""
    for name, choice in requested.items():
        value_of(name, choice)


def validate(requested: dict[str, str]) -> None:
    check_choices(requested)
    for name, choice in requested.items():
        setting = SETTINGS[name]
        if setting.debugfs and not mglru.debugfs_mounted():
            why = _debugfs_reason()
            if why:
                raise HotbenchError(f"--{name} needs {setting.path}, and debugfs cannot be mounted: {why}")
        elif not os.path.exists(setting.path):
            raise HotbenchError(f"--{name}: {setting.path} does not exist on this kernel; drop the option or use a "
                                f"kernel that has it (see 'hotbench probe')")
        if os.geteuid() != 0:
            raise HotbenchError(f"--{name} changes {setting.path} and needs root: run as root")


def _check_debugfs_knob(name: str, path: str) -> None:
    """HotbenchError unless the debugfs knob exists and reads (kernel lockdown lets debugfs mount
    but refuses every open with EPERM)."""
    if not os.path.exists(path):
        raise HotbenchError(f"--{name}: no {path} although debugfs is mounted (debugfs restricted? check "
                            f"debugfs= on the kernel command line)")
    try:
        with open(path) as f:
            f.read()
    except OSError as e:
        hint = (" (kernel lockdown restricts debugfs here: see dmesg and kernel_lockdown(7))"
                if e.errno == errno.EPERM else "")
        raise HotbenchError(f"--{name}: cannot read {path}: {e.strerror}{hint}") from None


def _command(argv: list[str], what: str, target: str) -> None:
    if os.environ.get(sysfs.LOG_ENV, "") not in ("", "0"):
        print(f"hotbench settings: {' '.join(argv)}", file=sys.stderr, flush=True)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        raise HotbenchError(f"cannot {what} on {target}: {e}") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        why = detail[-1] if detail else f"exit status {done.returncode}"
        raise HotbenchError(f"cannot {what} on {target}: {why}")


def mounted(target: str, fstype: str) -> bool:
    """True when a filesystem of *fstype* is mounted at *target* (this mount namespace)."""
    for line in (procfs.read_text(procfs.proc_path("mounts")) or "").splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[1] == target and fields[2] == fstype:
            return True
    return False


def unmount(target: str) -> None:
    _command(["umount", target], "unmount", target)


class DebugfsForRun:
    """Mount debugfs at /sys/kernel/debug now; unmount it on exit (also at interpreter exit;
    signals are deferred by the caller, ``bench.interrupts``, as for ``sysfs.Knobs``). The
    mount is in the state journal first, so the next command unmounts it after a SIGKILL."""

    def __init__(self, journal=None):
        self.mounted = False
        self._journal = journal
        self._entry = None

    def __enter__(self) -> DebugfsForRun:
        from bench import journal

        self._journal = self._journal or journal.default()
        self._entry = self._journal.record(journal.MOUNT, target=mglru.DEBUGFS, fstype="debugfs")
        try:
            _command(["mount", "-t", "debugfs", "debugfs", mglru.DEBUGFS], "mount debugfs", mglru.DEBUGFS)
        except BaseException:
            self._journal.remove(self._entry)
            raise
        self.mounted = True
        atexit.register(self.unmount)
        return self

    def unmount(self) -> None:
        """Idempotent: unmount the debugfs this object mounted, if it is still mounted."""
        if not self.mounted:
            return
        atexit.unregister(self.unmount)
        self.mounted = False
        if mglru.debugfs_mounted():
            _command(["umount", mglru.DEBUGFS], "unmount the debugfs mounted for the run", mglru.DEBUGFS)
        self._journal.remove(self._entry)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.unmount()
        except HotbenchError as error:
            sysfs.cleanup_failed(exc, error)


@contextmanager
def applied(requested: dict[str, str], journal=None) -> Iterator[dict]:
    """Apply *requested* settings for the duration; yields the manifest record
    {name: {set, was, now, path[, debugfs]}}. Every change is in the state journal
    (*journal*, by default ``bench.journal.default()``) before it is made."""
    validate(requested)
    paths = [SETTINGS[name].path for name in requested]
    record = {}
    with ExitStack() as stack:
        mounted_here = False
        if any(SETTINGS[name].debugfs for name in requested) and not mglru.debugfs_mounted():
            stack.enter_context(DebugfsForRun(journal))  # exits after Knobs: the knob is restored, then unmounted
            mounted_here = True
        knobs = stack.enter_context(sysfs.Knobs(paths, journal))
        for name, choice in requested.items():
            setting = SETTINGS[name]
            if setting.debugfs:
                _check_debugfs_knob(name, setting.path)
            was = sysfs.read(setting.path)
            try:
                knobs.write(setting.path, value_of(name, choice))
            except OSError as e:
                raise HotbenchError(f"--{name} {choice}: cannot write {setting.path}: {e.strerror}") from None
            record[name] = {"set": choice, "was": was, "now": sysfs.read(setting.path), "path": setting.path}
            if setting.debugfs:
                record[name]["debugfs"] = "mounted for the run" if mounted_here else "already mounted"
        yield record
