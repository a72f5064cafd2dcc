"""Progress on standard error: a bar on a terminal, lines elsewhere, nothing for None."""

import io

from vpop import progress
from vpop.progress import Progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_lines_come_every_interval_and_at_the_end_of_long_work():
    out, clock = io.StringIO(), Clock()
    bar = Progress(1000, out, "writing", interval=10.0, clock=clock)
    for _ in range(10):
        clock.now += 3.0
        bar.step(100)
    bar.done()
    assert out.getvalue().splitlines() == [
        "writing: 400/1,000 (40%)", "writing: 800/1,000 (80%)", "writing: 1,000/1,000 (100%)"]


def test_work_shorter_than_the_interval_says_nothing():
    out, clock = io.StringIO(), Clock()
    bar = Progress(3, out, "checking", interval=10.0, clock=clock)
    bar.step(3)
    clock.now = 1.0
    bar.done()
    assert out.getvalue() == ""


def test_the_bar_is_redrawn_at_most_every_tenth_of_a_second_and_cleared():
    out, clock = Terminal(), Clock()
    bar = Progress(100, out, "sessions", width=10, clock=clock)
    for step in range(100):
        clock.now = step * 0.01
        bar.step()
    drawn = out.getvalue().split("\r")[1:]
    assert drawn[0] == "sessions [..........] 1/100"
    assert drawn[-1] == "sessions [##########] 100/100"
    assert 10 <= len(drawn) <= 12  # the first, about one per 0.1 s, the last
    bar.done()
    assert out.getvalue().endswith("\r")
    assert out.getvalue().split("\r")[-2].strip() == ""


def test_the_factory_picks_the_bar_for_a_terminal_and_nothing_for_none():
    assert progress.on(Terminal())("x", 5).interval is None
    assert progress.on(io.StringIO(), interval=2.0)("x", 5).interval == 2.0
    silent = progress.silent("x", 5)
    silent.step(5)
    silent.done()
    assert silent.stream is None
