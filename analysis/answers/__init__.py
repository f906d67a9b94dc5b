"""The answers of named experiments: one module per experiment (``idle_vs_rwp`` for
``idle-vs-rwp``), each with ``answer(ctx) -> Answer``.

An answer is one paragraph generated from the data — numbers, the kernel and whether it ran
under emulation, never adjectives chosen in advance — plus the evidence (report blocks:
tables, text) behind each number. When the results cannot answer (the mechanisms it
compares did not run here), the module raises ``NoData`` saying what is missing; the report
then says so and names the ``hotbench vm`` kernel that would run the rest.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from analysis.data import Data, format_size
from bench.clock import Clock


class NoData(Exception):
    """These results cannot answer the question; the message says which results are missing."""


@dataclass
class Answer:
    paragraph: str
    evidence: list[tuple] = field(default_factory=list)  # analysis.report blocks


@dataclass
class Context:
    data: Data
    quick: bool
    records: list[dict] = field(default_factory=list)  # each source's experiment.json (steps, vmstat)

    @property
    def lockstep(self):
        return self.data.samples

    def where(self, label: str) -> str:
        """'kernel 7.3.4-hotbench, native', '..., under QEMU TCG emulation (timings are not native)' or
        '..., under QEMU TCG with the instruction clock (costs in guest instructions)'."""
        run = next(r for r in self.data.runs if r.label == label)
        env = run.env
        accel = env.get("accel") or "native"
        how = "native" if accel == "native" else f"under QEMU {accel.upper()} emulation (timings are not native)"
        if self.clock(label).instructions:
            how = f"under QEMU {accel.upper()} with the instruction clock (icount: costs in guest instructions)"
        return f"kernel {env.get('kernel_release', '?')}, {how}"

    def clock(self, label: str) -> Clock:
        """What *label*'s costs count: wall/CPU ns, or guest instructions (``bench/clock.py``)."""
        return self.data.clock_of(label)

    def unit(self, label: str, base: str = "ms") -> str:
        """*base* ("ms", "us", "s", "ns") as *label*'s clock names it: "Minstr" for ms under icount."""
        return self.clock(label).scaled_unit(base)

    def labels_with(self, frame, trackers: list[str]) -> list[str]:
        """Labels (kernels) whose rows in *frame* include every tracker in *trackers*."""
        return [label for label in self.data.labels
                if set(trackers) <= set(frame.loc[frame["label"] == label, "tracker"])]


def module_name(experiment: str) -> str:
    return experiment.replace("-", "_")


def answer(experiment: str, ctx: Context) -> Answer:
    try:
        module = importlib.import_module(f"analysis.answers.{module_name(experiment)}")
    except ModuleNotFoundError:
        raise NoData(f"no answer module analysis/answers/{module_name(experiment)}.py for this experiment; "
                     "the evidence below is all the report has") from None
    return module.answer(ctx)


# ---- small helpers the answer modules share ------------------------------------------------------

def pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f} %"


def num(x: float) -> str:
    """3 significant digits, plain notation."""
    if x != x:  # NaN
        return "n/a"
    if x == 0 or abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{max(0, 2 - int(f'{abs(x):e}'.split('e')[1]))}f}"


def ratio(a: float, b: float) -> str:
    return "n/a" if not b or a != a or b != b else f"{num(a / b)}×"


def sizes(frame) -> str:
    return ", ".join(format_size(s) for s in sorted(frame["size_bytes"].unique()))


def need(frame, what: str) -> None:
    if frame is None or not len(frame):
        raise NoData(f"no {what} in these results")


def workload_param(frame, key: str):
    """One workload parameter (e.g. 'accesses') of the rows, from their workload_params JSON;
    None when absent or when the rows disagree."""
    import json

    values = {json.loads(text).get(key) for text in frame["workload_params"].dropna().unique()}
    return values.pop() if len(values) == 1 else None


def cpu_fits(frame):
    """analysis.scaling fits of tracker CPU time per cycle (arm + collect thread CPU): wall time on
    a shared machine carries preemption the tracker did not cause. Raises NoData without a sweep."""
    from analysis.scaling import cost_fits

    frame = frame.assign(tracker_cpu_ns=frame["arm_cpu_ns"] + frame["collect_cpu_ns"])
    fits = cost_fits(frame, cost="tracker_cpu_ns")
    if not len(fits):
        raise NoData("no tracker ran at two or more sizes")
    return fits


def slope(fit: dict, key: str) -> str:
    """'12.3 ± 0.4' for a fitted slope, '-' when the fit has none."""
    value = fit.get(key)
    if value is None or value != value:
        return "-"
    return f"{num(value)} ± {num(fit.get(key + '_se', float('nan')))}"
