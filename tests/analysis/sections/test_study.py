"""analysis.sections.study: the named study's own section, from all the runs, only with a study."""
from analysis import report
from analysis.sections import study


def test_no_study_no_section(frames):
    assert study.study_lines(report.report_input(frames)) == []


def test_a_study_draws_its_section_into_the_figure_directory(frames, tmp_path):
    from synthetic_runs import quietly
    lines = quietly(study.study_lines, report.report_input(frames, study="glorot2010", figure_dir=tmp_path))
    assert lines[0] == "## Glorot & Bengio 2010"
    assert (tmp_path / "glorot_fig6_7_histograms.png").exists()


def test_an_unknown_study_has_no_section(frames, tmp_path):
    assert study.study_lines(report.report_input(frames, study="no_such_study", figure_dir=tmp_path)) == []


def test_without_a_figure_directory_the_study_is_left_out(frames):
    assert study.study_lines(report.report_input(frames, study="glorot2010")) == []
