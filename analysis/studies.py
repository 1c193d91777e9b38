"""Report sections of the named experiments (conf/experiment/): each draws its own
figures and states what its runs show, with numbers computed from them. One module per
study (analysis.study_<name>), registered in ``SECTIONS``.

    section = study_section("he2015", frames, figure_dir)   # markdown lines, [] if unknown
"""
from .study_remedies import remedies
from .study_adding import adding
from .study_clipping import clipping
from .study_glorot2010 import glorot2010
from .study_he2015 import he2015
from .study_isometry import isometry
from .study_phase_diagram import phase_diagram
from .study_rnn_init import rnn_init
from .study_symmetry import symmetry


SECTIONS = {"glorot2010": glorot2010, "he2015": he2015, "phase_diagram": phase_diagram, "symmetry": symmetry,
            "remedies": remedies, "rnn_init": rnn_init, "adding": adding, "clipping": clipping,
            "isometry": isometry}


def study_section(study, frames, figure_dir):
    """The markdown lines of ``study``'s own section ([] for other studies or no runs)."""
    if study not in SECTIONS or frames.runs.empty:
        return []
    return SECTIONS[study](frames, figure_dir)
