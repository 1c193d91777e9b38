"""analysis.contents and report.report_blocks: the one list of the report's sections, looped over in
order, figures numbered, the MLP sections left out of a report of recurrent runs alone."""
from dataclasses import replace

from analysis import report
from analysis.blocks import to_markdown
from analysis.contents import CONTENTS
from analysis.sections import SECTIONS, glance, notes, title
from analysis.sections.section import FigureSection
from synthetic_runs import quietly, recurrent_only


def headings(markdown):
    return [line for line in markdown.splitlines() if line.startswith(("# ", "## ", "### "))]


def test_the_contents_are_title_first_every_figure_once_and_notes_last():
    assert CONTENTS[0] is title.SECTION and CONTENTS[-1] is notes.SECTION
    figures = [part for part in CONTENTS if isinstance(part, FigureSection)]
    assert figures == list(SECTIONS)
    assert CONTENTS.index(glance.SECTION) < CONTENTS.index(SECTIONS[0])


def test_the_figures_are_numbered_in_the_order_of_the_list(frames):
    markdown = quietly(report.build_markdown, frames)
    numbered = [line for line in headings(markdown) if line.startswith("### Figure ")]
    assert numbered == [f"### Figure {n}. {section.heading}" for n, section in enumerate(SECTIONS, start=1)]
    # a "## " heading each time the figures' section changes, and only then
    sections = list(dict.fromkeys(section.section for section in SECTIONS))
    assert [line for line in headings(markdown) if line[3:] in sections] == [f"## {name}" for name in sections]


def test_a_report_of_recurrent_runs_alone_leaves_the_mlp_sections_out(frames, tmp_path):
    markdown = to_markdown(quietly(report.build_report, recurrent_only(frames), tmp_path, jobs=1))
    assert headings(markdown) == ["# Vanishing and exploding gradients: sweep report", "## At a glance",
                                  "## Recurrent networks: gradients through time"]
    assert "- Recurrent runs: 1 (cells rnn; T 12; datasets adding): 1 stalled." in markdown
    assert not any((tmp_path / "figures" / f"{section.name}.png").exists() for section in SECTIONS)


def test_an_empty_selection_keeps_the_figure_sections_saying_no_data(frames):
    empty = replace(frames, runs=frames.runs.iloc[:0], layer_stats=frames.layer_stats.iloc[:0], flags=None)
    markdown = quietly(report.build_markdown, empty)
    assert "- No runs: nothing to report." in markdown
    assert sum(line.startswith("### Figure ") for line in headings(markdown)) == len(SECTIONS)


def test_the_markdown_alone_of_recurrent_runs_leaves_out_what_would_draw(frames):
    markdown = quietly(report.build_markdown, recurrent_only(frames))
    assert headings(markdown) == ["# Vanishing and exploding gradients: sweep report", "## At a glance"]
