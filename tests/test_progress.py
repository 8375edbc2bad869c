"""Progress where output is not a terminal: whole log lines every few seconds, never carriage returns."""

import io

from rich.table import Table

from o1e.progress import LogLines, Show, bar, console


def test_progress_is_log_lines_off_a_terminal():
    out = io.StringIO()
    progress = bar(total=3, desc="synth", unit="row", file=out, mininterval=0)
    assert isinstance(progress, LogLines)
    for _ in range(3):
        progress.update(1)
    progress.close()
    text = out.getvalue()
    lines = [line for line in text.splitlines() if line]
    assert "\r" not in text and len(lines) >= 2 and text.isascii()  # "###", not 3-byte block characters
    assert lines[-1].startswith("synth: 100%") and "3/3" in lines[-1]


def test_a_line_only_when_the_count_moved():
    """No opening 0% line and no redraw of an unchanged count (a postfix change, tqdm's monitor); the last
    count once, at the close."""
    out = io.StringIO()
    with bar(total=4, desc="train", unit="step", file=out, mininterval=0) as progress:
        for step in range(4):
            progress.update(1)
            progress.set_postfix(loss=1.0 / (step + 1))
            progress.refresh()
    counts = [line.split("|")[2].split()[0] for line in out.getvalue().splitlines() if line]
    assert counts == ["1/4", "2/4", "3/4", "4/4"]

    idle = io.StringIO()
    with bar(total=5, desc="encode", unit="doc", file=idle, mininterval=0) as progress:
        progress.refresh()
    lines = [line for line in idle.getvalue().splitlines() if line]
    assert len(lines) == 1 and "0/5" in lines[0]  # nothing moved: one line, at the close


def test_a_cache_hit_shows_as_done():
    out = io.StringIO()
    with bar(total=400, initial=400, desc="encode + search", unit="doc", file=out) as progress:
        progress.update(0)
    assert "400/400" in [line for line in out.getvalue().splitlines() if line][-1]


def test_tables_and_rules_are_ascii_off_a_terminal():
    """A third of the bytes in a log: rich draws ASCII borders and rules, the text stays as it is."""
    out = console()  # pytest's stdout is not a terminal
    table = Table(title="retrieval — demo")
    table.add_column("k")
    table.add_row("3")
    with out.capture() as captured:
        out.rule("[1/2] prepare")
        out.print(table)
    text = captured.get()
    assert "+---" in text and "| 3 |" in text and "--- [1/2] prepare ---" in text
    assert text.replace("—", "").isascii() and out.width == 160


def test_show_says_what_a_stage_draws():
    assert Show.of(True) is Show.ALL and Show.of(False) is Show.NOTHING and Show.of(Show.PROGRESS) is Show.PROGRESS
    assert Show.ALL.progress and Show.ALL.tables
    assert Show.PROGRESS.progress and not Show.PROGRESS.tables  # what a pipeline asks of its stages
    assert not Show.NOTHING.progress and not Show.NOTHING.tables
