"""The scaling answer: which trackers follow total memory, which the working set."""

from ._rows import data, say, sweep


def test_scaling_tells_memory_from_working_set_and_tests_kiryls_claim():
    text = say("scaling", data(sweep("idle-page", 100.0, 0.0) + sweep("rwp", 0.0, 200.0)))
    assert "total memory: idle-page" in text and "working set: rwp" in text
    assert "rwp follows working set (claimed: working set)" in text
    assert "idle-page follows total memory (claimed: total memory)" in text
    swapped = say("scaling", data(sweep("idle-page", 0.0, 200.0) + sweep("rwp", 100.0, 0.0)))
    assert "rwp follows total memory (claimed: working set)" in swapped
