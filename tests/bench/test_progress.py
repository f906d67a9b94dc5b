"""bench/_progress.py: a live line that fits the terminal and names the cell, one plain line per
finished cell without a terminal. No kernel needed; the live run is in test_cli_run.py."""

import io
import re

import pytest

from bench._progress import Progress, clock_text

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LABEL = "shmem-zap-minor · masim:config=workloads/configs/example.toml · shmem · 256M · rep 3"


class Terminal(io.StringIO):
    def isatty(self):
        return True


def screen_lines(text: str) -> list[str]:
    """What each redraw put on the screen: control sequences removed, split at CR and LF."""
    return [line for line in re.split(r"[\r\n]", ANSI.sub("", text)) if line.strip()]


@pytest.mark.parametrize("columns", [40, 80, 200])
def test_live_line_fits_the_terminal_and_names_the_cell(monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    term = Terminal()
    progress = Progress(3, term, weights=[1, 1, 2])
    for cell in range(3):
        for i in range(4):
            progress.update(LABEL, f"interval {i + 1}/4", i / 4)
        progress.advance()
    progress.close()
    lines = screen_lines(term.getvalue())
    assert lines and all(len(line) <= columns for line in lines), [len(line) for line in lines]
    assert any(line.startswith("[2/3] ") and "interval 3/4" in line for line in lines)
    if columns >= 200:  # room for everything: the whole name, a bar, elapsed and eta
        assert any(LABEL in line and "━" in line and " eta " in line for line in lines)
    elif columns >= 80:
        assert any("shmem-zap-minor · masim" in line and "…" in line and "256M · rep 3" in line for line in lines)
        assert not any("━" in line for line in lines)  # the bar gives way to the cell's name
    assert "\x1b[?25h" in term.getvalue()[-40:]  # the cursor is shown again at the end


def test_without_a_terminal_one_plain_line_per_finished_cell():
    log = io.StringIO()
    progress = Progress(2, log, weights=[1, 3])
    progress.update("uffd-wp · hotcold · anon · 16M · rep 1", "interval 1/2", 0.0)
    assert log.getvalue() == ""  # nothing until a cell finishes
    progress.advance("ok")
    progress.update("uffd-wp · hotcold · anon · 64M · rep 1", "interval 1/2", 0.0)
    progress.advance("error: EPERM")
    progress.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and "\x1b" not in log.getvalue()
    assert re.fullmatch(r"\[1/2\] uffd-wp · hotcold · anon · 16M · rep 1: ok in \d+\.\d s; \d:\d\d elapsed, "
                        r"~\d:\d\d left", lines[0]), lines[0]
    assert re.fullmatch(r"\[2/2\] uffd-wp · hotcold · anon · 64M · rep 1: error: EPERM in \d+\.\d s; \d:\d\d elapsed",
                        lines[1]), lines[1]


def test_eta_weighs_cells_by_their_expected_share(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("bench._progress.time.monotonic", lambda: now[0])
    progress = Progress(3, io.StringIO(), weights=[1, 1, 8])
    now[0] += 10
    progress.advance()
    assert progress._left() == pytest.approx(90)  # 1 of 10 units in 10 s: 9 units left


def test_clock_text():
    assert [clock_text(s) for s in (0, 7.4, 62, 3723)] == ["0:00", "0:07", "1:02", "1:02:03"]
