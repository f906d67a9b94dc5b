"""``hotbench experiment NAME``: run a named experiment's steps on this kernel, then report.

Each step (``bench/experiments/NAME.toml``) is an ordinary ``hotbench run|evict|micro``
command run as a child process into ``OUT/steps/STEP/``, so an experiment's results are
ordinary results directories (``hotbench report`` and ``plot`` read them too). Trackers and
eviction variants this kernel lacks are dropped from the step with the probe's reason, and
the report names a ``hotbench vm`` kernel that has them. ``OUT/experiment.json``
(``results.write_experiment``) records every step (argv, status, skips, seconds) and is
rewritten atomically before and after each, with the experiment's own status and owner, so
an interrupted experiment leaves a valid partial record and a killed one reads as killed.

Every step's arguments are checked (``bench.cli.experiment.check_step``: the step command's
own parser and checks) before the output directory exists. SIGINT, SIGTERM and SIGHUP are passed on to the
step in progress, which stops at its own safe point; the experiment then stops too, with
the signal's exit status.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import experiments, interrupts, results
from bench.errors import HotbenchError, Interrupted

RECORD = results.EXPERIMENT
STEPS_DIR = "steps"


@dataclass
class StepRecord:
    name: str
    command: str
    argv: list[str] = field(default_factory=list)
    status: str = "pending"  # ok | failed: why | skipped: why | interrupted
    skipped: dict[str, str] = field(default_factory=dict)  # tracker/variant -> reason
    mechanisms_missing: list[str] = field(default_factory=list)
    seconds: float = 0.0
    vmstat: dict[str, int] = field(default_factory=dict)  # numa_* counters: growth during the step


def _flag(key: str, value) -> list[str]:
    flag = "--" + key.replace("_", "-")
    return [flag] if value is True else [flag, str(value)]


def step_argv(options: dict) -> list[str]:
    """The command-line arguments of a step's *options* (``Step.options``)."""
    return [arg for key, value in options.items() for arg in _flag(key, value)]


def mechanism_of(command: str, name: str) -> str:
    """The probe mechanism behind a run step's tracker or an evict step's variant."""
    if command == "evict":
        from bench import evict

        return evict.VARIANTS[name].mechanism or name
    from bench import trackers

    return trackers.get(name).mechanism


def _filter_trackers(options: dict, record: StepRecord) -> dict:
    from bench import trackers

    wanted = [t.strip() for t in str(options.get("trackers", "")).split(",") if t.strip()]
    keep = []
    for name in wanted:
        reason = trackers.get(name).unavailable()
        if reason:
            record.skipped[name] = reason
            record.mechanisms_missing.append(mechanism_of("run", name))
        else:
            keep.append(name)
    return {**options, "trackers": ",".join(keep)} if keep else {}


def _filter_variants(options: dict, record: StepRecord) -> dict:
    from bench import evict

    params = evict.EvictParams(**{key: options[key] for key in ("backing", "size") if key in options})
    keep = []
    for name in str(options.get("variant", ",".join(evict.variant_names()))).split(","):
        reason = evict.unavailable(name, params)
        if reason:
            record.skipped[name] = reason
            record.mechanisms_missing.append(mechanism_of("evict", name))
        else:
            keep.append(name)
    return {**options, "variant": ",".join(keep)} if keep else {}


def _filter_sizes(options: dict, record: StepRecord) -> dict:
    """Drop arena sizes this machine cannot hold (a 2 GiB guest runs the small end of a sweep)."""
    from bench import arena
    from bench.kernel import procfs

    if "size" not in options:
        return options
    room = 0.9 * procfs.meminfo().get("MemAvailable", 0)
    sizes = [s.strip() for s in str(options["size"]).split(",") if s.strip()]
    keep = [s for s in sizes if arena.parse_size(s) <= room]
    for s in sizes:
        if s not in keep:
            record.skipped[f"size {s}"] = f"more than 90 % of MemAvailable ({arena.size_token(int(room / 0.9))})"
    return {**options, "size": ",".join(keep)} if keep else {}


def _command(step: experiments.Step, options: dict, step_dir: Path) -> tuple[list[str], Path | None]:
    """argv of the child and, for evict/micro, the run directory this module writes a manifest into."""
    base = [sys.executable, "-m", "bench", step.command]
    if step.command == "run":
        return base + step_argv(options) + ["--out", str(step_dir)], None
    run_dir = results.create_run_dir(step_dir, results.new_run_id())
    if step.command == "evict":
        return base + step_argv(options) + ["--out", str(run_dir / results.EVICTION)], run_dir
    return base + step_argv(options) + ["-o", str(run_dir / results.MICRO)], run_dir


def _run_step(step: experiments.Step, quick: bool, out: Path) -> StepRecord:
    record = StepRecord(step.name, step.command)
    options = step.options(quick)
    if step.command == "run":
        options = _filter_sizes(_filter_trackers(options, record), record)
    elif step.command == "micro":
        options = _filter_sizes(options, record)
    elif step.command == "evict":
        options = _filter_variants(options, record)
    if not options:
        record.status = "skipped: no requested mechanism is available on this kernel"
        return record
    step_dir = out / STEPS_DIR / step.name
    results.make_dirs(step_dir)
    argv, run_dir = _command(step, options, step_dir)
    record.argv = argv[2:]
    if run_dir is not None:
        _write_child_manifest(run_dir, step, record, results.RUNNING)
    started, before = time.monotonic(), _numa_vmstat()
    status, tail = _child(argv, step_dir / "stdout.txt")
    record.seconds = round(time.monotonic() - started, 1)
    record.vmstat = {key: value - before.get(key, 0) for key, value in _numa_vmstat().items()}
    record.status = _status(status, tail)
    if run_dir is not None:
        _write_child_manifest(run_dir, step, record, _run_status(record.status), _signal_of(status))
    return record


def _child(argv: list[str], stdout: Path) -> tuple[int, str]:
    """Run one step: its stdout to a file, its stderr (progress, skips, errors) passed through
    to ours as it comes and its last line kept, for the step's status. Signals to this
    process are passed on to it (``interrupts.forwarding``)."""
    tail = b""
    with open(stdout, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE)
        with interrupts.forwarding(proc):
            while chunk := proc.stderr.read1(4096):
                sys.stderr.buffer.write(chunk)
                sys.stderr.flush()
                tail = (tail + chunk)[-4096:]
            status = proc.wait()
    lines = [line.strip() for line in tail.decode(errors="replace").replace("\r", "\n").splitlines() if line.strip()]
    return status, lines[-1] if lines else ""


def _numa_vmstat() -> dict[str, int]:
    """NUMA balancing's counters (numa_pte_updates, numa_hint_faults, ...): did it run at all?"""
    from bench.kernel import procfs

    return {k: v for k, v in procfs.vmstat().items() if k.startswith("numa_")}


def _write_child_manifest(run_dir: Path, step: experiments.Step, record: StepRecord, status: str,
                          signal_name: str | None = None) -> None:
    """evict and micro write a file, not a results directory: make one around it (before the
    step, "running" under this process's name; after it, how it ended)."""
    from bench import environment

    manifest = {"run_id": run_dir.name, "command": record.argv, "mode": step.command,
                "git_commit": results.git_commit(), "environment": environment.describe(),
                "skipped": record.skipped, "status": status}
    if signal_name:
        manifest["signal"] = signal_name
    results.stamp_progress(manifest)
    results.write_manifest(run_dir, manifest)


_SIGNALLED = {128 + int(sig): sig.name for sig in interrupts.SIGNALS}


def _signal_of(code: int) -> str | None:
    return _SIGNALLED.get(code) or (signal.Signals(-code).name if code < 0 else None)


def _status(code: int, last_error_line: str) -> str:
    if code == 0:
        return "ok"
    if code in _SIGNALLED:
        return f"interrupted by {_SIGNALLED[code]}"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"failed: exit {code}" + (f" ({last_error_line[:200]})" if last_error_line else "")


def _run_status(step_status: str) -> str:
    if step_status == "ok":
        return results.COMPLETE
    return results.INTERRUPTED if step_status.startswith(("interrupted", "killed")) else results.FAILED


def run(spec: experiments.Spec, out: Path, quick: bool, log=sys.stderr) -> dict:
    """Run every step of *spec* into *out*; returns the experiment record (also in OUT/experiment.json).
    The caller has checked every step's arguments (``bench.cli.experiment.check_step``)."""
    from bench import environment

    if out.exists() and any(out.iterdir()):
        raise HotbenchError(f"{out} is not empty; hotbench never overwrites results: choose another --out")
    results.create_out_dir(out)
    record = {"experiment": spec.name, "quick": quick, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "environment": environment.describe(), "status": results.RUNNING, "steps": []}
    try:
        with interrupts.deferred("waiting for the step in progress to stop"):
            for number, step in enumerate(spec.steps):
                interrupts.check()
                print(f"experiment {spec.name}: step {step.name} ({step.command})", file=log, flush=True)
                # On record before it starts: a step killed with its machine stays "running" there.
                record["steps"].append(asdict(StepRecord(step.name, step.command, status="running")))
                _save(out, record, steps_done=number, steps_total=len(spec.steps))
                done = _run_step(step, quick, out)
                record["steps"][-1] = asdict(done)
                _save(out, record, steps_done=number + 1, steps_total=len(spec.steps))
                for name, reason in done.skipped.items():
                    print(f"  skip {name}: {reason}", file=log)
                interrupts.check()  # a signal to this process (passed on to the step): stop here
                if done.status != "ok":  # a step that failed, or was killed on its own: the next one runs
                    print(f"  {done.status}", file=log)
    except Interrupted as e:
        record.update(status=results.INTERRUPTED, signal=e.signame)
        _save(out, record)
        raise e.saying(f"interrupted by {e.signame}; the steps so far are kept in {out}") from None
    record["status"] = results.COMPLETE
    _save(out, record)
    return record


def _save(out: Path, record: dict, **progress) -> None:
    results.stamp_progress(record, **progress)
    results.write_experiment(out, record)


def load_record(out: Path) -> dict:
    return results.load_experiment(out)


def vm_hint(spec: experiments.Spec, missing: list[str], quick: bool, out: Path) -> str | None:
    """The command that would run the rest of *spec* in a cached kernel having *missing*."""
    if not missing:
        return None
    # --icount: the guest's costs are then exact instruction counts, not emulated time (docs/icount.md)
    name, options = spec.name, "".join(f" {o}" for o in ["--icount", *spec.vm_options])
    from bench.vm import kernels

    need = set(missing)
    have = [k for k in kernels.entries() if need <= set(k.mechanisms())]
    guest_out = out / "vm"
    inner = f"python3 -m bench experiment {name}{' --quick' if quick else ''} --out {guest_out}"
    if have:
        key = have[0].key
        return (f"hotbench vm --kernel {key}{options} --share {out} --timeout 7200 -- {inner}; then "
                f"hotbench experiment {name} --from {out} {guest_out}")
    fetch = "hotbench kernel build --debian 7.3" if "idle-page" in need else "hotbench kernel fetch debian:7.3"
    return f"{fetch}, then run it inside: hotbench vm --kernel KEY{options} --share {out} -- {inner}"
