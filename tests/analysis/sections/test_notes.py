"""analysis.sections.notes: the load's notes and the runs the theory cannot size, or no section."""
from dataclasses import replace

from analysis.sections import notes
from analysis.sections.section import ReportInput


def report_of(frames):
    return ReportInput(frames=frames, recurrent_frames=frames, everything=frames)


def test_no_notes_no_section(frames):
    assert notes.notes_lines(report_of(replace(frames, notes=[]))) == []


def test_the_load_notes_and_runs_without_sizes(frames):
    runs = frames.runs.copy()
    runs.loc[runs.index[:2], ["n_in", "n_out"]] = float("nan")
    lines = notes.notes_lines(report_of(replace(frames, runs=runs, notes=["3 run(s) have no scalars.parquet"])))
    assert lines[:3] == ["## Data notes", "", "- 3 run(s) have no scalars.parquet"]
    assert lines[3].startswith("- 2 run(s) logged no n_in / n_out tags") and len(lines) == 4
