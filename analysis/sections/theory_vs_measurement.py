"""The mean-field predictions at initialization against the measured profiles (analysis.theory)."""
from ..theory import markdown_section
from .section import TextSection


def theory_lines(report):
    return markdown_section(report.frames.layer_stats, report.frames.runs)


SECTION = TextSection("Theory vs measurement", theory_lines, mlp=True)
