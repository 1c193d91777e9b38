"""analysis: MLflow runs -> tidy DataFrames -> figures -> reports/report.md.

    from analysis import load, report
    from analysis.sections import grad_norm
    frames = load.load_frames(experiment="gradpath")          # latest sweep
    fig = grad_norm.fig_grad_norm_init(frames.layer_stats, frames.runs)
    blocks = report.build_report(frames, "reports")           # figures, summary.csv, report.md, report.html

Modules:
  load          MLflow (sqlite) -> Frames(runs, layer_stats, histograms, scalars, diagnosis)
  tables        derived tables: per-layer values at init / at the end, gradient ratios, summary
  contents      the report's sections in order (CONTENTS), the one list report loops over
  sections      one module per report section: the figures (SECTIONS: run choice, figure, caption,
                observations) and the text sections (title, glance, study, theory_vs_measurement,
                recurrent_nets, notes)
  studies       the named experiments' sections (SECTIONS), one module each: study_<name>
  selection     the shared rules for which run or configuration a single-run figure shows
  figures       the figures' shared style and helpers (per-layer grid, colours, saving)
  observations  the sentences' shared helpers and the sentences of no one figure
  blocks        the report as blocks, rendered to markdown, self-contained HTML (markdown-it-py) and the note
  report        build_report(frames, out_dir) and the `python -m analysis.report` entry point

mlflow is imported only by ``load`` and by the report's logging step, inside the
functions that need it: it takes 1.5 s to import, and figures and tests do not need it.
"""
