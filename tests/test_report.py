"""``o1e report``: the demo pipeline's report (written by the pipeline at its end) opened in a real headless
browser (Debian's chromium): the page renders, logs no console error, and holds every plot."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# As the machine notes advise for a closed network: no background connections, a fresh profile.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]
SECTIONS = ["Steps and their cost", "Retrieval quality", "Training", "Committee: vote",
            "Per query: eval, k=3 against k=0", "Lineage of the figures"]


def chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (bash install.sh installs it where apt can)")
def test_the_demo_report_renders_in_a_headless_browser(pipeline_demo, tmp_path):
    from PIL import Image

    report = os.path.join(pipeline_demo["root"], "report.html")
    assert os.path.isfile(report) and "report: " in pipeline_demo["stdout"]
    page = f"file://{report}"
    dom = chromium(tmp_path, "--dump-dom", page)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for section in SECTIONS:
        assert f"<h2>{section}</h2>" in dom.stdout, section
    assert dom.stdout.count("<svg") == 5  # nDCG@10, quality against cost, training, committee, per query
    # Nothing to fetch: no script, stylesheet, image or link to load (the SVGs' xmlns are names, not fetches).
    assert not re.search(r"""(src|href)=["']https?://|<script|<link""", open(report).read())
    shot = tmp_path / "report.png"
    run = chromium(tmp_path, "--window-size=1280,5000", "--hide-scrollbars", f"--screenshot={shot}", page)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() + dom.stderr.splitlines() if "CONSOLE" in line]
    assert not [line for line in console if "error" in line.lower() or "uncaught" in line.lower()], console
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 5000)
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, axes and coloured bars, not a blank page
    keep = os.environ.get("O1E_REPORT_SCREENSHOT")
    if keep:  # where a person looks at it
        shutil.copy(shot, keep)

    # The command writes the same page again, anywhere.
    again = tmp_path / "again.html"
    o1e = os.path.join(os.path.dirname(sys.executable), "o1e")
    run = subprocess.run([o1e, "report", pipeline_demo["root"], "-o", str(again)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0 and again.read_text().count("<svg") == 5, run.stderr[-2000:]
