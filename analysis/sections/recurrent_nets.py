"""The recurrent runs' section: gradients through time (analysis.recurrent); none without recurrent runs."""
from .. import recurrent
from .section import TextSection


def recurrent_lines(report):
    return recurrent.section(report.recurrent_frames, report.figure_dir)


SECTION = TextSection("Recurrent networks", recurrent_lines)
