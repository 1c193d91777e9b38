"""The parent run's front page: note content from whatever the at-a-glance section holds."""
import numpy as np

from analysis import front_page
from analysis.blocks import Block

BLOCKS = [Block("", "# Vanishing gradients: sweep report"), Block("", "Source: x; [summary.csv](summary.csv)."),
          Block("At a glance", "## At a glance"),
          Block("At a glance", "- Grid: depths 2, 50; see ![fig](figures/grad_norm_init.png) and [the SVG](figures/a.svg).\n"
                               "- Ratio 10<sup>-41.9</sup>; [docs](https://example.org) and [here](#top)."),
          Block("At a glance", "| a |\n|---|\n| 1 |"),
          Block("Gradients at initialization", "## Gradients at initialization"),
          Block("Gradients at initialization", "- not in the note")]


def test_note_holds_the_glance_blocks_with_links_inside_the_ui():
    note = front_page.note_content(BLOCKS, "7", "abc", sweep="s1")
    base, view = "#/experiments/7/runs/abc/artifacts/report", "?workflowType=machine_learning"
    assert note.startswith("## Vanishing gradients: sweep report")
    assert f"[report.html]({base}/report.html{view})" in note and f"[summary.csv]({base}/summary.csv{view})" in note
    assert f"[fig]({base}/figures/grad_norm_init.png{view})" in note and f"[the SVG]({base}/figures/a.svg{view})" in note
    assert "[docs](https://example.org)" in note and "[here](#top)" in note
    assert "10⁻⁴¹·⁹" in note and "<sup>" not in note
    assert "not in the note" not in note and "`s1`" in note
    assert "### At a glance\n\n- Grid" in note and "(#top).\n\n| a |\n|---|\n| 1 |\n" in note


def test_without_glance_blocks_the_note_has_the_links_only():
    note = front_page.note_content(BLOCKS[:2], "7", "abc")
    assert "At a glance" not in note and "[report.md](" in note


def test_headline_metrics(frames):
    metrics = front_page.headline_metrics(frames)
    runs = frames.runs
    assert metrics["runs"] == len(runs) and metrics["max_depth"] == runs["depth"].max()
    assert metrics["runs_diverged"] == (runs["outcome"] == "diverged").sum()
    assert metrics["acc_val/best"] == np.nanmax(runs["acc/val"])
    assert all(np.isfinite(v) for v in metrics.values())
