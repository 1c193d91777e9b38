"""The report's contents: the one list of its sections, in order, that analysis.report loops over.

Each entry is one module of analysis/sections/: a text section (TextSection) or a figure section
(FigureSection, numbered in order); sections marked ``mlp`` are left out of a report of recurrent
runs alone.
"""
from .sections import SECTIONS as FIGURES
from .sections import glance, notes, recurrent_nets, study, theory_vs_measurement, title

CONTENTS = (title.SECTION, study.SECTION, glance.SECTION, *FIGURES, theory_vs_measurement.SECTION,
            recurrent_nets.SECTION, notes.SECTION)
