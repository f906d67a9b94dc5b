"""The clock of a run's costs: recorded in every manifest and row, converted in one place, never mixed."""

import numpy as np
import pytest

from bench import clock


def test_instructions_are_guest_ns_shifted_right():
    icount0, icount3, wall = clock.Clock("instructions", 0), clock.Clock("instructions", 3), clock.Clock()
    assert icount0.to_units(1_000_000) == 1_000_000 and icount0.unit == "instr"
    assert icount3.to_units(8_000) == 1_000 and list(icount3.to_units(np.array([16, 8]))) == [2, 1]
    assert wall.to_units(123) == 123 and wall.unit == "ns"
    assert [icount0.scaled_unit(u) for u in ("s", "ms", "us", "ns")] == ["Ginstr", "Minstr", "kinstr", "instr"]
    assert wall.scaled_unit("ms") == "ms"
    assert "icount, shift 3" in icount3.describe() and wall.describe() == "wall-clock time"


def test_clock_from_the_environment_and_from_manifests():
    assert clock.current({"HOTBENCH_CLOCK": "instructions", "HOTBENCH_ICOUNT_SHIFT": "0"}).instructions
    assert clock.current({"HOTBENCH_CLOCK": "instructions"}) == clock.Clock("instructions", 0)
    assert clock.of_manifest({"environment": {"clock": "instructions", "icount_shift": 2}}).shift == 2
    # manifests from before the field were measured on the wall clock
    assert clock.of_manifest({"environment": {"accel": "tcg"}}) == clock.Clock("wall", None)
    assert clock.of_manifest({}) == clock.Clock()
    assert clock.row_fields(clock.Clock("instructions", 1)) == {"clock": "instructions", "icount_shift": 1}
    assert clock.row_fields(clock.Clock()) == {"clock": "wall", "icount_shift": None}


def test_mixing_clocks_is_refused_by_name():
    icount = clock.Clock("instructions", 0)
    assert clock.single([icount, icount]) == icount and clock.single([]) == clock.Clock()
    with pytest.raises(clock.MixedClocksError, match="mix clocks .*icount.*wall-clock"):
        clock.single([icount, clock.Clock()], "A and B")
    with pytest.raises(clock.MixedClocksError):  # two shifts count different things per ns
        clock.single([icount, clock.Clock("instructions", 2)])


def test_every_manifest_records_the_clock(monkeypatch):
    from bench import environment

    monkeypatch.delenv("HOTBENCH_IN_VM", raising=False)
    monkeypatch.delenv("HOTBENCH_CLOCK", raising=False)
    env = environment.describe()
    assert (env["clock"], env["icount_shift"], env["vcpus"]) == ("wall", None, None)
    monkeypatch.setenv("HOTBENCH_IN_VM", "1")
    monkeypatch.setenv("HOTBENCH_CLOCK", "instructions")
    monkeypatch.setenv("HOTBENCH_ICOUNT_SHIFT", "0")
    env = environment.describe()
    assert (env["clock"], env["icount_shift"], env["vcpus"]) == ("instructions", 0, env["cpus"])


@pytest.mark.root
def test_lockstep_rows_carry_the_clock(monkeypatch):
    from bench import runner

    monkeypatch.setenv("HOTBENCH_CLOCK", "instructions")
    monkeypatch.setenv("HOTBENCH_ICOUNT_SHIFT", "1")
    rows = runner.run_cell(runner.Cell("mprotect", "uniform", "anon", 4 << 20, 1, 0, 1, accesses=100))
    assert (rows[0]["clock"], rows[0]["icount_shift"]) == ("instructions", 1)


def test_icount_runs_are_a_series_of_their_own():
    from bench.nightly.store import machine_label

    assert machine_label({"hostname": "box", "accel": "tcg"}) == "box/tcg"
    assert machine_label({"hostname": "box", "accel": "tcg", "clock": "instructions", "icount_shift": 0}) == \
        "box/tcg-icount"
    assert machine_label({"accel": "tcg", "clock": "instructions", "icount_shift": 2}, "tb") == "tb/tcg-icount2"
