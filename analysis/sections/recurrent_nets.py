"""The recurrent runs' section: gradients through time (analysis.recurrent); none without recurrent runs."""
from .. import recurrent
from .section import TextSection


def recurrent_lines(report):
    return [] if report.figure_dir is None else recurrent.section(report.recurrent_frames, report.figure_dir)


SECTION = TextSection("Recurrent networks", recurrent_lines)
