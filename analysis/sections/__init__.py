"""The figure sections of the main report, one module per figure (or per figure drawn at
initialization and at the end of training): each selects its runs from the tidy frames, draws,
and writes its caption and its observations (analysis.sections.section.FigureSection).

``SECTIONS`` is the registry: the report numbers and places the figures in this order, under a
"## <section>" heading whenever the section changes.
"""
from . import act_var, delta_ms, grad_norm, heatmaps, histograms, outcome_map, ratio_vs_depth, saturation, training_curves

SECTIONS = (
    grad_norm.INIT_SECTION,
    ratio_vs_depth.SECTION,
    act_var.INIT_SECTION,
    delta_ms.SECTION,
    histograms.SECTION,
    grad_norm.FINAL_SECTION,
    act_var.FINAL_SECTION,
    heatmaps.SECTION,
    saturation.SECTION,
    training_curves.SECTION,
    outcome_map.SECTION,
)
SECTIONS_BY_NAME = {section.name: section for section in SECTIONS}
