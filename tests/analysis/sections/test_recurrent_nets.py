"""analysis.sections.recurrent_nets: the section through time, only with recurrent runs."""
from analysis import report
from analysis.sections import recurrent_nets
from synthetic_runs import recurrent_only


def test_mlp_runs_alone_have_no_recurrent_section(frames, tmp_path):
    assert recurrent_nets.recurrent_lines(report.report_input(frames, figure_dir=tmp_path)) == []
    assert not any(tmp_path.iterdir())


def test_recurrent_runs_get_the_section_and_its_figure(frames, tmp_path):
    from synthetic_runs import quietly
    lines = quietly(recurrent_nets.recurrent_lines, report.report_input(recurrent_only(frames), figure_dir=tmp_path))
    assert lines[0] == "## Recurrent networks: gradients through time"
    assert (tmp_path / "recurrent_delta_ms.svg").exists()


def test_without_a_figure_directory_the_section_is_left_out(frames):
    assert recurrent_nets.recurrent_lines(report.report_input(recurrent_only(frames))) == []
