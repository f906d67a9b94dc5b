"""The tlb-missed-accesses answer: first against later intervals, with and without flushes."""

import numpy as np

from ._rows import data, row, say


def test_tlb_missed_accesses_compares_first_and_later_intervals():
    def counted(interval, est, interfere):  # referenced: a WSS count, no confusion counts
        return row("referenced", interval=interval, tp=np.nan, fp=np.nan, fn=np.nan, wss_true=100, wss_est=est,
                   interfere=interfere)

    rows = [counted(0, 100, "none"), counted(1, 30, "none"), counted(0, 100, "tlb-flush"), counted(1, 100, "tlb-flush")]
    rows += [row("mprotect", interval=i, tp=100, interfere="none") for i in range(2)]
    text = say("tlb-missed-accesses", data(rows))
    assert "accessed-bit trackers referenced 1.000 → 0.300 (70.0 % missed)" in text
    assert "protection-based mprotect 1.000 → 1.000 (0.0 % missed)" in text
    assert "flushed after each arm: accessed-bit referenced 1.000 → 1.000" in text
