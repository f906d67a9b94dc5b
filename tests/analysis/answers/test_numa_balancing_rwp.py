"""The numa-balancing-rwp answer: whether balancing faulted at all, and what it did to rwp."""

from ._rows import data, row, say


def test_numa_balancing_says_when_balancing_never_faulted():
    rows = [row("rwp", run="off"), row("rwp", run="on", fp=3)]
    settings = {"off": {"numa-balancing": {"set": "off"}}, "on": {"numa-balancing": {"set": "on"}}}
    scanned = [{"environment": {"kernel_release": "7.3.4"},
                "steps": [{"name": "balancing_on", "vmstat": {"numa_pte_updates": 5000, "numa_hint_faults": 700}},
                          {"name": "balancing_off", "vmstat": {"numa_hint_faults": 0}}]},
               {"environment": {"kernel_release": "6.18"},  # another kernel's step: not this answer's
                "steps": [{"name": "balancing_on", "vmstat": {"numa_pte_updates": 1, "numa_hint_faults": 1}}]}]
    text = say("numa-balancing-rwp", data(rows, settings, accel="tcg"), scanned)
    assert "under QEMU TCG emulation" in text and "With 2 NUMA node(s)" in text
    assert "updated 5,000 PTEs and took 700 hinting faults" in text
    assert "rwp with balancing on: precision 0.9709" in text and "cannot show an interaction" not in text
    idle = say("numa-balancing-rwp", data(rows, settings), [{"steps": []}])
    assert "NUMA balancing took no hinting fault, so these runs cannot show an interaction" in idle
