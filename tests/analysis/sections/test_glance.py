"""analysis.sections.glance: the grid line, the verdict counts, and the section for MLP and recurrent runs."""
from dataclasses import replace

from analysis import report
from analysis.sections import glance
from synthetic_runs import recurrent_only


def test_the_grid_line_counts_the_runs_of_other_sweeps(frames_factory):
    frames = frames_factory(activations=("relu",), inits=("uniform",), depths=(2,), sweep="now", diverged=())
    assert glance.at_a_glance(frames)[0].endswith("; dataset moons.")
    runs = frames.runs.copy()
    runs.loc[0, "sweep"] = ""
    assert glance.at_a_glance(replace(frames, runs=runs))[0].endswith(
        "; 1 of the 2 runs come from single runs (1).")
    runs.loc[1, "sweep"] = "before"
    assert glance.at_a_glance(replace(frames, runs=runs))[0].endswith(
        "; 2 of the 2 runs come from other sweeps (`before`: 1) and single runs (1).")
    assert "come from" not in glance.at_a_glance(replace(frames, runs=runs, sweep=""))[0]   # not one sweep


def test_the_section_counts_the_verdicts_and_ends_with_the_tables(frames):
    judged = report.report_input(frames)
    lines = glance.glance_lines(judged)
    assert lines[:2] == ["## At a glance", ""]
    counts = judged.frames.runs["trainability"].value_counts()
    trainability = next(line for line in lines if line.startswith("- Trainability: "))
    assert trainability.startswith(f"- Trainability: {counts.get('trained', 0)} trained, "
                                   f"{counts.get('stalled', 0)} stalled, {counts.get('diverged', 0)} diverged ")
    # the bullets, then the key numbers table, then the pathology table with its sentences last
    key = next(i for i, line in enumerate(lines) if line.startswith("| activation | init | log10 grad ratio at init"))
    outcome = next(i for i, line in enumerate(lines) if line.startswith("| pathology at init | trained | stalled"))
    assert all(line.startswith("- ") for line in lines[2:key - 2] if line)
    assert key < outcome and lines[-1].startswith("- ")
    assert not any(line.startswith("- ") for line in lines[key:outcome])


def test_recurrent_runs_alone_get_their_bullets_and_no_mlp_table(frames):
    lines = glance.glance_lines(report.report_input(recurrent_only(frames)))
    assert lines[:2] == ["## At a glance", ""]
    assert "- Recurrent runs: 1 (cells rnn; T 12; datasets adding): 1 stalled." in lines
    assert not any(line.startswith(("| ", "- Grid: ", "- Trainability: ")) for line in lines)
