"""A named experiment's own section (analysis.studies), first after the title; none without --study."""
from ..studies import study_section
from .section import TextSection


def study_lines(report):
    return study_section(report.study, report.everything, report.figure_dir) if report.study else []


SECTION = TextSection("Named study", study_lines)
