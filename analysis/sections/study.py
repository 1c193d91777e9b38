"""A named experiment's own section (analysis.studies), first after the title; none without --study."""
from ..studies import study_section
from .section import TextSection


def study_lines(report):
    if not report.study or report.figure_dir is None:
        return []
    return study_section(report.study, report.everything, report.figure_dir)


SECTION = TextSection("Named study", study_lines)
