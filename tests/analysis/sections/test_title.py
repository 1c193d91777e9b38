"""analysis.sections.title: the title and where the runs came from, counting MLP and recurrent runs."""
from dataclasses import replace

from analysis import report
from analysis.sections import title


def test_the_source_names_what_is_known(frames):
    assert title.source_line(replace(frames, experiment="", sweep="", parent_run_id=""), 3) == \
        "Source: the given frames; 3 runs."
    named = replace(frames, experiment="gradpath", sweep="abc", parent_run_id="p1")
    assert title.source_line(named, 7) == "Source: experiment `gradpath`, sweep `abc`, parent run `p1`; 7 runs."


def test_the_title_counts_every_run(frames):
    from synthetic_runs import recurrent_only
    import pandas as pd
    mixed = replace(frames, runs=pd.concat([frames.runs.assign(cell="none"), recurrent_only(frames).runs],
                                          ignore_index=True), flags=None)
    lines = title.title_lines(report.report_input(mixed))
    assert lines[0] == "# Vanishing and exploding gradients: sweep report"
    assert lines[2].endswith(f"; {len(frames.runs) + 1} runs.")
