"""analysis.sections.theory_vs_measurement: the mean-field table for MLP runs, none for recurrent runs alone."""
from analysis import report
from analysis.sections import theory_vs_measurement
from synthetic_runs import recurrent_only


def test_the_section_about_the_deepest_mlp_runs(frames):
    lines = theory_vs_measurement.theory_lines(report.report_input(frames))
    assert lines[0] == "## Theory vs measurement"
    assert f"for the deepest networks (depth {int(frames.runs['depth'].max())})" in lines[2]


def test_recurrent_runs_alone_give_no_table(frames):
    assert theory_vs_measurement.theory_lines(report.report_input(recurrent_only(frames))) == []
