"""Figures: one function per figure, each taking the load tables and returning a
matplotlib Figure.

    fig = fig_grad_norm_init(frames.layer_stats, frames.runs)
    save_figure(fig, "reports/figures", "grad_norm_init")

Figures are built with ``matplotlib.figure.Figure`` on an Agg canvas, not through
pyplot: nothing is registered in pyplot's global figure list, so a figure is freed
when the last reference to it goes, and the code runs headless.

One style throughout: seaborn's whitegrid/paper style and colorblind palette (a
sequential palette when a hue has more than ten ordered levels, and for layer
colouring), a suptitle, a title per panel, labelled axes, and log axes for
quantities that span decades. When a figure has nothing to show it says so: a
panel without data carries a centred "no data" note, and a figure without any
data is a single "no data: <reason>" panel under its title.

Optional ``theory`` frames (columns activation, init, depth, layer, stat, value),
e.g. mean-field predictions, are drawn as dashed lines in the colour of their depth.

seaborn's style and palette are written out here as constants: ``import seaborn`` costs
about 2.5 s (most of it scipy.stats) in every process that draws, for two dicts and a
list of colours. tests/analysis/test_figures.py checks the copy against seaborn.
"""
import functools
import textwrap
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator

from experiments import record

from . import selection, tables
from .tables import FINAL, HEALTHY_LOG10_RATIO, INIT

SEQUENTIAL = "viridis"
MAX_CATEGORICAL = 10          # the colorblind palette has ten distinct colours
# seaborn.color_palette("colorblind")
COLORBLIND = ("#0173B2", "#DE8F05", "#029E73", "#D55E00", "#CC78BC", "#CA9161", "#FBAFE4", "#949494",
              "#ECE133", "#56B4E9")
# {**seaborn.axes_style("whitegrid"), **seaborn.plotting_context("paper")} (seaborn 0.13)
SEABORN_STYLE = {
    "axes.axisbelow": True, "axes.edgecolor": ".8", "axes.facecolor": "white", "axes.grid": True,
    "axes.labelcolor": ".15", "axes.labelsize": 9.600000000000001, "axes.linewidth": 1.0,
    "axes.spines.bottom": True, "axes.spines.left": True, "axes.spines.right": True, "axes.spines.top": True,
    "axes.titlesize": 9.600000000000001, "figure.facecolor": "white", "font.family": ["sans-serif"],
    "font.sans-serif": ["Arial", "DejaVu Sans", "Liberation Sans", "Bitstream Vera Sans", "sans-serif"],
    "font.size": 9.600000000000001, "grid.color": ".8", "grid.linestyle": "-", "grid.linewidth": 0.8,
    "image.cmap": "rocket", "legend.fontsize": 8.8, "legend.title_fontsize": 9.600000000000001,
    "lines.linewidth": 1.2000000000000002, "lines.markersize": 4.800000000000001, "lines.solid_capstyle": "round",
    "patch.edgecolor": "w", "patch.force_edgecolor": True, "patch.linewidth": 0.8, "text.color": ".15",
    "xtick.bottom": False, "xtick.color": ".15", "xtick.direction": "out", "xtick.labelsize": 8.8,
    "xtick.major.size": 4.800000000000001, "xtick.major.width": 1.0, "xtick.minor.size": 3.2,
    "xtick.minor.width": 0.8, "xtick.top": False, "ytick.color": ".15", "ytick.direction": "out",
    "ytick.labelsize": 8.8, "ytick.left": False, "ytick.major.size": 4.800000000000001, "ytick.major.width": 1.0,
    "ytick.minor.size": 3.2, "ytick.minor.width": 0.8, "ytick.right": False,
}
STYLE = {**SEABORN_STYLE,
         "image.cmap": SEQUENTIAL, "axes.titlesize": 9.0, "figure.titlesize": 11.0,
         # Titles at the top of their axes, where matplotlib's automatic placement puts them
         # when no tick labels are above the axes (none are here). Automatic placement looks
         # for such labels by laying out every axis's ticks again on each draw (the style
         # draws no tick marks, so matplotlib cannot tell where they are): a third of the
         # figures' drawing time.
         "axes.titley": 1.0,
         # Text stays text in the SVG: smaller and much faster to write than glyph paths.
         "svg.hashsalt": "gradpath", "svg.fonttype": "none"}
TITLE_CHARS_PER_INCH = 10     # at figure.titlesize 11 pt, with margin
PANEL_SIZE = (2.7, 2.1)       # inches per panel; the figure grows with the grid
MAX_MARKED_POINTS = 12        # lines with more points are drawn without markers
DPI = 100                     # PNG resolution: readable on GitHub, quick to write
# Optimizers are told apart by line style; "--" is kept for theory overlays.
OPTIMIZER_LINESTYLES = ("-", ":", "-.", (0, (5, 1, 1, 1, 1, 1)))
THEORY_STYLE = {"linestyle": "--", "linewidth": 1.0, "alpha": 0.9}
BAND_ALPHA = 0.25             # shaded seed spread (and, hatched, the finite-width band)
SEED_BAND = "min–max"         # the spread over seeds drawn around the median

STAT_LABELS = {
    "grad_norm": r"$\|\partial L/\partial W_l\|_F$",
    "act_var": r"Var$[a_l]$",
    "delta_ms": r"mean $(\partial \ell_n/\partial z_l)^2$",
}
WHEN_LABELS = {INIT: "at initialization", FINAL: "at the last logged step"}


def styled(function):
    """Run the figure function under the house style (rc settings apply when artists
    are made), then tidy its log axes."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            fig = function(*args, **kwargs)
            tidy_log_axes(fig)
            return fig
    return wrapper


def new_figure(nrows, ncols, sharex=False, sharey=False, extra_width=1.4):
    """(Figure, 2-D array of axes) sized for the grid, with room for a legend."""
    width = PANEL_SIZE[0] * ncols + extra_width
    height = PANEL_SIZE[1] * nrows + 0.7
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex, sharey=sharey)
    return fig, axes


@styled
def no_data_figure(title, reason):
    """A figure that says why it is empty, under its usual title."""
    fig = Figure(figsize=(6.0, 2.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, f"no data: {reason}", ha="center", va="center", transform=ax.transAxes,
            fontsize=10, color="0.3")
    suptitle(fig, title)
    return fig


def suptitle(fig, text):
    """The figure title, wrapped to the figure's width so that it is never cut off."""
    chars_per_line = max(30, int(fig.get_figwidth() * TITLE_CHARS_PER_INCH))
    fig.suptitle(textwrap.fill(text, chars_per_line))


def mark_empty(ax, reason="no data"):
    ax.text(0.5, 0.5, reason, ha="center", va="center", transform=ax.transAxes, color="0.45",
            fontsize=8)


def label_outer(axes, xlabel, ylabel):
    """x label on the bottom row, y label on the left column."""
    for ax in axes[-1, :]:
        ax.set_xlabel(xlabel)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)


def ordered_colors(levels):
    """{level: colour}: the colorblind palette, or evenly spaced viridis colours for many
    levels (as seaborn.color_palette("viridis", n): the ends of the map left out)."""
    levels = list(levels)
    if len(levels) <= MAX_CATEGORICAL:
        colors = [matplotlib.colors.to_rgb(color) for color in COLORBLIND[:len(levels)]]
    else:
        cmap = matplotlib.colormaps[SEQUENTIAL]
        colors = [tuple(rgba[:3]) for rgba in cmap(np.linspace(0, 1, len(levels) + 2)[1:-1])]
    return dict(zip(levels, colors))


def optimizer_styles(optimizers):
    return {name: OPTIMIZER_LINESTYLES[i % len(OPTIMIZER_LINESTYLES)]
            for i, name in enumerate(optimizers)}


SUPERSCRIPTS = str.maketrans("-0123456789.", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹·")


def decade_label(value, position=None):
    """Log-axis tick label in plain text (no mathtext parsing, a large share of
    drawing time): "0.5", "1", "20" near 1, "10⁻³" for other powers of ten."""
    if not (np.isfinite(value) and value > 0):
        return ""
    exponent = np.log10(value)
    if -2 <= exponent <= 2:
        return f"{value:g}"
    if abs(exponent - round(exponent)) < 1e-9:
        return "10" + str(int(round(exponent))).translate(SUPERSCRIPTS)
    return f"{value:.3g}"


def tidy_log_axes(fig):
    """Plain-text labels on every log y axis and no minor ticks (this style draws no
    tick marks, and minor ticks are the slowest part of laying out). Data spanning
    less than two decades get ticks at 1, 2 and 5 times each power of ten, so that
    more than one tick is labelled."""
    for ax in fig.axes:
        if ax.get_yscale() != "log":
            continue
        siblings = ax.get_shared_y_axes().get_siblings(ax)
        ydata = [np.asarray(line.get_ydata(), dtype=np.float64) for axis in siblings for line in axis.get_lines()]
        values = np.concatenate(ydata) if ydata else np.array([])
        values = values[np.isfinite(values) & (values > 0)]
        if values.size and values.max() < 100 * values.min():
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(decade_label))
        ax.yaxis.set_minor_locator(NullLocator())


def point_markers(n_points):
    """Markers for a line of few points (a single point would be invisible without
    one); a long line is readable without them, and thousands of markers make the
    SVG slow to write and heavy to view."""
    return {"marker": "o", "markersize": 2.5} if n_points <= MAX_MARKED_POINTS else {}


def positive(frame, column="value"):
    """Rows with a finite positive ``column``: what a log axis can show."""
    values = frame[column].to_numpy(dtype=np.float64)
    return frame[np.isfinite(values) & (values > 0)]


def layer_colorbar(fig, axes, n_layers, label="layer"):
    """A colorbar for lines coloured by layer 1..n_layers; returns the colour map."""
    cmap = matplotlib.colormaps[SEQUENTIAL]
    norm = Normalize(1, max(n_layers, 2))
    mappable = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    colorbar = fig.colorbar(mappable, ax=axes, label=label, shrink=0.8)
    colorbar.locator = MaxNLocator(integer=True)  # layers are whole numbers
    colorbar.update_ticks()
    return lambda layer: cmap(norm(layer))


def save_figure(fig, directory, name, dpi=DPI):
    """Write ``name``.png and ``name``.svg into ``directory``; returns both paths.

    This consumes the figure: its layout is frozen and its dpi left at the SVG's.
    ``Figure.savefig`` draws twice when a layout engine is set (once to lay out,
    once to render); drawing is most of a report's time, so the canvases' print
    methods are called directly: the PNG draw lays out and renders in one pass,
    and the SVG reuses that layout (it is in figure units) with a single draw.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    png, svg = directory / f"{name}.png", directory / f"{name}.svg"
    with matplotlib.rc_context(STYLE):  # the svg.* settings are read when saving
        fig.set_dpi(dpi)
        FigureCanvasAgg(fig).print_png(png)
        fig.set_layout_engine("none")
        FigureCanvasSVG(fig).print_svg(svg, metadata={"Date": None})  # no date: same data, same file
    return [png, svg]


# ---------------------------------------------------------------------------
# Per-layer profiles: rows = init, columns = activation, one line per depth
# ---------------------------------------------------------------------------

def _draw_theory(ax, theory, stat, activation, init, colors):
    """Dashed theory lines for one panel, and the finite-width 90% band (stat + ":low" /
    ":high" rows) hatched between dotted edges; (line drawn, band drawn)."""
    if theory is None or theory.empty:
        return False, False
    panel = theory[(theory["activation"] == activation) & (theory["init"] == init)]
    rows = positive(panel[panel["stat"] == stat])
    for depth, line in rows.groupby("depth"):
        line = line.sort_values("layer")
        ax.plot(line["layer"], line["value"], color=colors.get(depth, "0.4"), **THEORY_STYLE)
    low, high = positive(panel[panel["stat"] == f"{stat}:low"]), positive(panel[panel["stat"] == f"{stat}:high"])
    band = low.merge(high, on=["depth", "layer"], suffixes=("_low", "_high")).sort_values("layer")
    for depth, rows_band in band.groupby("depth"):
        ax.fill_between(rows_band["layer"], rows_band["value_low"], rows_band["value_high"],
                        color=colors.get(depth, "0.4"), alpha=BAND_ALPHA / 2, linewidth=0, hatch="///")
    return not rows.empty, not band.empty


def seed_count(runs):
    """The number of seeds per configuration (the largest), 1 for a single-seed sweep."""
    if runs.empty:
        return 0
    return int(runs.groupby(["activation", "init", "depth", "optimizer"])["seed"].nunique().max())


def _layer_grid(layer_stats, runs, stat, when, title, theory=None):
    """Per-layer ``stat`` (log y) at ``when``: rows = init, columns = activation,
    colour = depth; at the end of training also line style = optimizer. With several seeds
    the line is the median over seeds and a shaded band their min–max."""
    if runs.empty:
        return no_data_figure(title, "no runs")
    by_optimizer = when == FINAL
    by = ("activation", "init", "depth", "optimizer") if by_optimizer else ("activation", "init", "depth")
    profile = positive(tables.layer_profile(layer_stats, runs, stat, when, by=by, spread=True))
    if profile.empty:
        return no_data_figure(title, f"no finite positive {stat} {WHEN_LABELS[when]}")
    seeds = seed_count(runs)
    activations = sorted(runs["activation"].unique())
    inits = sorted(runs["init"].unique())
    colors = ordered_colors(sorted(runs["depth"].unique()))
    styles = optimizer_styles(sorted(runs["optimizer"].unique()))
    fig, axes = new_figure(len(inits), len(activations), sharex=True, sharey=True)
    drew_theory = drew_band = False
    for row, init in enumerate(inits):
        for col, activation in enumerate(activations):
            ax = axes[row, col]
            panel = profile[(profile["activation"] == activation) & (profile["init"] == init)]
            for key, line in panel.groupby(list(by[2:])):
                depth = key[0]
                line = line.sort_values("layer")
                linestyle = styles[key[1]] if by_optimizer else "-"
                ax.plot(line["layer"], line["value"], color=colors[depth], linestyle=linestyle,
                        **point_markers(len(line)))
                if seeds > 1:
                    spread = line[(line["low"] > 0) & np.isfinite(line["high"])]
                    ax.fill_between(spread["layer"], spread["low"], spread["high"], color=colors[depth],
                                    alpha=BAND_ALPHA, linewidth=0)
            line_drawn, band_drawn = _draw_theory(ax, theory, stat, activation, init, colors)
            drew_theory |= line_drawn
            drew_band |= band_drawn
            if panel.empty:
                mark_empty(ax)
            ax.set_yscale("log")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # layers are whole numbers
            ax.set_title(f"{activation} · {init}")
    label_outer(axes, "layer $l$ (1 = input side)", STAT_LABELS.get(stat, stat))
    handles = [Line2D([], [], color=color, label=f"depth {depth}")
               for depth, color in colors.items()]
    if by_optimizer:
        handles += [Line2D([], [], color="0.3", linestyle=style, label=name)
                    for name, style in styles.items()]
    if seeds > 1:
        handles.append(Patch(color="0.3", alpha=BAND_ALPHA, label=f"{SEED_BAND} over {seeds} seeds"))
    if drew_theory:
        handles.append(Line2D([], [], color="0.3", label="theory (mean field)", **THEORY_STYLE))
    if drew_band:
        handles.append(Patch(facecolor="0.3", alpha=BAND_ALPHA / 2, hatch="///", label="finite width, 90%"))
    fig.legend(handles=handles, loc="outside right center", frameon=False)
    suptitle(fig, title + (f" (median of {seeds} seeds)" if seeds > 1 else ""))
    return fig


@styled
def fig_grad_norm_init(layer_stats, runs, theory=None):
    """Weight-gradient norm per layer at initialization (log y); rows = init,
    columns = activation, one line per depth. A straight sloped line on the log
    axis is the vanishing (rising toward the output) or exploding signature."""
    return _layer_grid(layer_stats, runs, "grad_norm", INIT,
                       "Gradient norm per layer at initialization", theory)


@styled
def fig_grad_norm_final(layer_stats, runs):
    """As fig_grad_norm_init, at each run's last logged step; line style = optimizer."""
    return _layer_grid(layer_stats, runs, "grad_norm", FINAL,
                       "Gradient norm per layer at the last logged step "
                       "(diverged runs: last finite probe)")


@styled
def fig_act_var(layer_stats, runs, when=INIT, theory=None):
    """Activation variance per layer at initialization or at the last logged step."""
    return _layer_grid(layer_stats, runs, "act_var", when,
                       f"Activation variance per layer {WHEN_LABELS[when]}", theory)


@styled
def fig_delta_ms(layer_stats, runs, when=INIT, theory=None):
    """Mean square back-propagated (per-example) error per layer."""
    return _layer_grid(layer_stats, runs, "delta_ms", when,
                       f"Back-propagated error per layer {WHEN_LABELS[when]}", theory)


# ---------------------------------------------------------------------------
# Gradient ratio between the first and the last layer
# ---------------------------------------------------------------------------

@styled
def fig_ratio_vs_depth(layer_stats, runs):
    """log10(grad_norm at layer 1 / at layer L) at init against depth: one panel per
    activation, one line per init, the band |log10 ratio| < 1 shaded, and a red cross on
    every configuration the diagnosis flags at init (runs column ``pathology_init``): the
    ratio alone is blind when the forward signal and the backward error vanish together.

    Depth stays on a linear axis: a per-layer gain makes the log ratio linear in depth."""
    title = "Gradient ratio between the first and the last layer at initialization"
    if runs.empty:
        return no_data_figure(title, "no runs")
    ratios = tables.config_ratio(tables.grad_ratio(layer_stats, runs, INIT), runs)
    ratios = ratios[np.isfinite(ratios["value"])]
    if ratios.empty:
        return no_data_figure(title, "no finite positive grad_norm at layers 1 and L at step 0")
    flagged = tables.flagged_configs(runs)
    activations = sorted(runs["activation"].unique())
    colors = ordered_colors(sorted(runs["init"].unique()))
    depths = sorted(int(depth) for depth in ratios["depth"].unique())
    fig, axes = new_figure(1, len(activations), sharex=True, sharey=True, extra_width=2.2)
    for col, activation in enumerate(activations):
        ax = axes[0, col]
        ax.axhspan(-HEALTHY_LOG10_RATIO, HEALTHY_LOG10_RATIO, color="0.85", alpha=0.6, linewidth=0)
        ax.axhline(0.0, color="0.5", linewidth=0.8)
        panel = ratios[ratios["activation"] == activation]
        for init, line in panel.groupby("init"):
            line = line.sort_values("depth")
            ax.plot(line["depth"], line["value"], color=colors[init], marker="o", markersize=3.5)
            sick = line[[(activation, init, depth) in flagged for depth in line["depth"]]]
            ax.plot(sick["depth"], sick["value"], linestyle="none", marker="x", markersize=7, color="#d62728")
        if panel.empty:
            mark_empty(ax)
        ax.set_xticks(depths)  # the tested depths, whole numbers even when there is one
        ax.set_title(activation)
    label_outer(axes, "depth (hidden layers)", r"$\log_{10}(\|g_1\| / \|g_L\|)$ at init")
    handles = [Line2D([], [], color=color, marker="o", markersize=3.5, label=init)
               for init, color in colors.items()]
    handles.append(Patch(color="0.85", label=f"|log10 ratio| < {HEALTHY_LOG10_RATIO:g}\n(not a health test alone)"))
    if flagged:
        handles.append(Line2D([], [], linestyle="none", marker="x", markersize=7, color="#d62728",
                              label="flagged by the diagnosis\nat init (≥ half of its runs)"))
    fig.legend(handles=handles, loc="outside right center", frameon=False)
    suptitle(fig, title)
    return fig


# ---------------------------------------------------------------------------
# Gradient norm over layer x training step
# ---------------------------------------------------------------------------

def _edges(centres):
    """Cell edges around sorted ``centres`` (midpoints, extended at both ends)."""
    centres = np.asarray(centres, dtype=np.float64)
    if centres.size == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    mids = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - mids[0]], mids, [2 * centres[-1] - mids[-1]]])


def _color_limits(values):
    """Shared colour limits: the 1st-99th percentile of the finite values, so one
    overflowing probe does not wash out every panel."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, [1, 99])
    return (low - 0.5, high + 0.5) if low == high else (low, high)


@styled
def fig_grad_heatmaps(layer_stats, runs, optimizer=None):
    """log10 grad_norm over layer x training step for the deepest network of each
    activation x init, for one optimizer (default sgd, else the first)."""
    optimizer, shown = selection.heatmap_runs(runs, optimizer)
    title = f"log10 gradient norm per layer during training (deepest network of each panel, {optimizer})"
    if shown.empty:
        return no_data_figure("log10 gradient norm over layers and training", "no runs")
    grads = layer_stats[(layer_stats["stat"] == "grad_norm") & layer_stats["run_id"].isin(shown["run_id"])]
    grads = grads.assign(log10=tables.safe_log10(grads["value"]))
    if not np.isfinite(grads["log10"]).any():
        return no_data_figure(title, "no finite positive grad_norm")
    vmin, vmax = _color_limits(grads["log10"].to_numpy())
    cmap = matplotlib.colormaps[SEQUENTIAL].with_extremes(bad="0.9")
    activations = sorted(shown["activation"].unique())
    inits = sorted(shown["init"].unique())
    fig, axes = new_figure(len(inits), len(activations), extra_width=1.0)
    mesh = None
    for row, init in enumerate(inits):
        for col, activation in enumerate(activations):
            ax = axes[row, col]
            ax.grid(False)
            match = shown[(shown["activation"] == activation) & (shown["init"] == init)]
            if match.empty:
                mark_empty(ax, "no run")
                ax.set_title(f"{activation} · {init}")
                continue
            run = match.iloc[0]
            ax.set_title(f"{activation} · {init} (depth {run['depth']})")
            cells = grads[grads["run_id"] == run["run_id"]]
            if cells.empty:
                mark_empty(ax)
                continue
            layers = np.arange(1, max(int(cells["layer"].max()), int(run["depth"]) + 1) + 1)
            grid = cells.pivot_table(index="layer", columns="step", values="log10", aggfunc="first",
                                     dropna=False).reindex(layers)
            mesh = ax.pcolormesh(_edges(grid.columns), _edges(layers), np.ma.masked_invalid(grid.to_numpy()),
                                 cmap=cmap, vmin=vmin, vmax=vmax, shading="flat", rasterized=True)
            if run["outcome"] == "diverged":
                stop = run["diverged_step"]
                note = f"diverged at step {int(stop)}" if np.isfinite(stop) else "diverged"
                ax.text(0.97, 0.03, note, transform=ax.transAxes, ha="right", va="bottom", fontsize=7,
                        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8})
    label_outer(axes, "training step", "layer $l$")
    if mesh is not None:
        fig.colorbar(mesh, ax=axes, label=r"$\log_{10}\|\partial L/\partial W_l\|_F$", shrink=0.8)
    suptitle(fig, title)
    return fig


# ---------------------------------------------------------------------------
# Training curves
# ---------------------------------------------------------------------------

CURVE_ROWS = ((record.LOSS_TRAIN, "training loss", True), (record.ACC_VAL, "validation accuracy", False))


@styled
def fig_training_curves(scalars, runs, init=None):
    """loss/train (log y) and acc/val against step, one line per optimizer (one per
    run when there are several seeds), for each activation at its largest depth
    with one init (default xavier_uniform, else the first)."""
    init, setup = selection.curves_setup(runs, init)
    title = f"Training curves at the largest depth, init {init}"
    if not setup:
        return no_data_figure("Training curves at the largest depth", "no runs")
    shown = pd.concat([group for _, group in setup.values()])
    curves = scalars[scalars["run_id"].isin(shown["run_id"])]
    curves = curves[np.isfinite(curves["value"].to_numpy(np.float64))]
    if curves.empty:
        return no_data_figure(title, "no finite loss/train or acc/val values")
    activations = sorted(setup)
    colors = ordered_colors(sorted(runs["optimizer"].unique()))
    fig, axes = new_figure(len(CURVE_ROWS), len(activations), sharex="col", sharey="row")
    for col, activation in enumerate(activations):
        depth, group = setup[activation]
        for row, (metric, _, log_scale) in enumerate(CURVE_ROWS):
            ax = axes[row, col]
            drawn = 0
            for _, run in group.iterrows():
                line = curves[(curves["run_id"] == run["run_id"]) & (curves["name"] == metric)]
                line = positive(line) if log_scale else line
                if line.empty:
                    continue
                line = line.sort_values("step")
                ax.plot(line["step"], line["value"], color=colors[run["optimizer"]])
                if run["outcome"] == "diverged":
                    ax.plot(line["step"].iloc[-1], line["value"].iloc[-1], marker="X", markersize=7,
                            color=colors[run["optimizer"]], markeredgecolor="black", markeredgewidth=0.5)
                drawn += 1
            if drawn == 0:
                mark_empty(ax)
            if log_scale:
                ax.set_yscale("log")
            else:
                ax.set_ylim(-0.02, 1.02)
            ax.set_title(f"{activation} (depth {depth}): {metric}")
    for ax in axes[-1, :]:
        ax.set_xlabel("training step")
    for row, (_, label, _) in enumerate(CURVE_ROWS):
        axes[row, 0].set_ylabel(label)
    handles = [Line2D([], [], color=color, label=name) for name, color in colors.items()]
    handles.append(Line2D([], [], color="0.5", marker="X", linestyle="none", markeredgecolor="black",
                          label="diverged (last finite value)"))
    fig.legend(handles=handles, loc="outside right center", frameon=False)
    suptitle(fig, title)
    return fig


# ---------------------------------------------------------------------------
# One run in detail: activations and saturation during training
# ---------------------------------------------------------------------------

SATURATION_PANELS = (
    ("activation mean ± std per hidden layer", "activation value"),
    (r"saturated fraction ($\phi' < 0.1\,\max\phi'$)", "fraction of unit-examples"),
    ("dead units (saturated on every example)", "fraction of units"),
)


@styled
def fig_saturation(layer_stats, runs, run_id=None):
    """Glorot & Bengio (2010) Fig. 2 style for one run (default: sigmoid + uniform at
    the middle depth when present): the mean activation of each hidden layer with a
    ±1 std band against step, and the saturated and dead-unit fractions per layer."""
    run = selection.saturation_run(runs, run_id)
    if run is None:
        return no_data_figure("Activations and saturation during training", "no runs")
    depth = int(run["depth"])
    title = (f"Activations and saturation during training: {run['activation']} + {run['init']}, "
             f"depth {depth}, {run['optimizer']}, seed {run['seed']}")
    if run["outcome"] == "diverged":
        title += " (diverged)"
    rows = layer_stats[(layer_stats["run_id"] == run["run_id"]) & (layer_stats["layer"] <= depth)]
    rows = tables.finite(rows)
    stats = rows.pivot_table(index=["layer", "step"], columns="stat", values="value", aggfunc="first")
    needed = ["act_mean", "act_var", "saturation", "dead_frac"]
    if stats.empty or any(name not in stats.columns for name in needed):
        return no_data_figure(title, "no act_mean/act_var/saturation/dead_frac for the hidden layers")
    fig, axes = new_figure(1, len(SATURATION_PANELS), sharex=True, extra_width=1.0)
    color_of = layer_colorbar(fig, axes, depth, label="hidden layer $l$")
    mean_ax, saturation_ax, dead_ax = axes[0]
    for layer, per_step in stats.groupby(level="layer"):
        per_step = per_step.droplevel("layer").sort_index()
        steps = per_step.index.to_numpy()
        color = color_of(layer)
        mean = per_step["act_mean"].to_numpy(np.float64)
        std = np.sqrt(np.clip(per_step["act_var"].to_numpy(np.float64), 0.0, None))
        band = np.isfinite(mean) & np.isfinite(std)
        mean_ax.plot(steps[band], mean[band], color=color)
        mean_ax.fill_between(steps[band], (mean - std)[band], (mean + std)[band], color=color,
                             alpha=0.12, linewidth=0)
        for ax, stat in ((saturation_ax, "saturation"), (dead_ax, "dead_frac")):
            values = per_step[stat].to_numpy(np.float64)
            keep = np.isfinite(values)
            ax.plot(steps[keep], values[keep], color=color)
    for ax, (panel_title, ylabel) in zip(axes[0], SATURATION_PANELS):
        ax.set_title(panel_title)
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
    for ax in (saturation_ax, dead_ax):
        ax.set_ylim(-0.02, 1.02)
    suptitle(fig, title)
    return fig


# ---------------------------------------------------------------------------
# Histograms at initialization
# ---------------------------------------------------------------------------

HISTOGRAM_ROWS = (("act", "activations", "activation value $a_l$", False),
                  ("delta", "back-propagated errors", r"per-example error $\partial \ell_n/\partial z_l$", True))


def _densities(hist):
    """(bin centres, normalized density) of one histogram; empty for zero counts."""
    hist = hist.sort_values("bin")
    width = (hist["right"] - hist["left"]).to_numpy(np.float64)
    counts = hist["count"].to_numpy(np.float64)
    total = counts.sum()
    centres = ((hist["left"] + hist["right"]) / 2).to_numpy(np.float64)
    if total <= 0:
        return centres[:0], counts[:0]
    with np.errstate(divide="ignore", invalid="ignore"):
        density = counts / (total * width)
    return centres, density


@styled
def fig_histograms(histograms, runs, activation=None, depth=None, inits=None):
    """Glorot & Bengio (2010) Figs. 6-7 style: normalized histograms of the
    activations and of the back-propagated errors of every hidden layer at
    initialization, one line per layer, for two inits (default uniform vs
    xavier_uniform) at one depth (default the one closest to 5) and activation
    (default tanh). The error densities span decades, so that row is log y."""
    base_title = "Histograms at initialization"
    activation, depth, chosen = selection.histogram_setup(runs, histograms, activation, depth, inits)
    if not chosen:
        return no_data_figure(base_title, "no run with histograms at step 0")
    title = f"{base_title}: {activation}, depth {depth}, hidden layers 1-{depth}"
    at_init = histograms[(histograms["step"] == 0) & (histograms["layer"] <= depth)
                         & histograms["run_id"].isin(chosen.values())]
    if not (at_init["count"] > 0).any():
        return no_data_figure(title, "every histogram at step 0 is empty")
    fig, axes = new_figure(len(HISTOGRAM_ROWS), len(chosen), sharex="row", sharey="row", extra_width=1.0)
    color_of = layer_colorbar(fig, axes, depth, label="hidden layer $l$")
    for col, (init, run_id) in enumerate(chosen.items()):
        run_hists = at_init[at_init["run_id"] == run_id]
        for row, (kind, name, xlabel, log_scale) in enumerate(HISTOGRAM_ROWS):
            ax = axes[row, col]
            drawn = 0
            for layer, hist in run_hists[run_hists["kind"] == kind].groupby("layer"):
                centres, density = _densities(hist)
                keep = np.isfinite(density) & (density > 0 if log_scale else np.isfinite(density))
                if keep.any():
                    ax.plot(centres[keep], density[keep], color=color_of(layer), linewidth=1.0)
                    drawn += 1
            if drawn == 0:
                mark_empty(ax)
            if log_scale:
                ax.set_yscale("log")
            ax.set_title(f"{init}: {name}")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("density")
    suptitle(fig, title)
    return fig


# ---------------------------------------------------------------------------
# Outcomes
# ---------------------------------------------------------------------------

def _outcome_cells(runs, activation, optimizer, inits, depths):
    """(mean acc/val matrix, diverged-count matrix, run-count matrix) over init x depth;
    the mean is over seeds that did not diverge."""
    shape = (len(inits), len(depths))
    accuracy, diverged, total = np.full(shape, np.nan), np.zeros(shape, int), np.zeros(shape, int)
    panel = runs[(runs["activation"] == activation) & (runs["optimizer"] == optimizer)]
    for (init, depth), group in panel.groupby(["init", "depth"]):
        i, j = inits.index(init), depths.index(depth)
        is_diverged = (group["outcome"] == "diverged").to_numpy()
        total[i, j], diverged[i, j] = len(group), int(is_diverged.sum())
        values = group.loc[~is_diverged, "acc/val"].to_numpy(np.float64)
        values = values[np.isfinite(values)]
        if values.size:
            accuracy[i, j] = values.mean()
    return accuracy, diverged, total


def _cell_text(accuracy, diverged, total):
    if total == 0:
        return ""
    if diverged == total:
        return "div."  # the whole word does not fit a cell of a 5-depth panel
    text = f"{accuracy:.2f}" if np.isfinite(accuracy) else "n/a"
    return f"{text}\n{diverged}/{total} div." if diverged else text


@styled
def fig_outcome_map(runs):
    """Final validation accuracy over depth x init, one panel per activation x
    optimizer; cells with diverged runs are hatched and say how many diverged."""
    title = "Final validation accuracy (mean over seeds that did not diverge); hatched: diverged runs"
    if runs.empty:
        return no_data_figure("Final validation accuracy", "no runs")
    activations = sorted(runs["activation"].unique())
    optimizers = sorted(runs["optimizer"].unique())
    inits = sorted(runs["init"].unique())
    depths = sorted(int(depth) for depth in runs["depth"].unique())
    cmap = matplotlib.colormaps[SEQUENTIAL].with_extremes(bad="0.88")
    fig, axes = new_figure(len(optimizers), len(activations), extra_width=1.2)
    image = None
    for row, optimizer in enumerate(optimizers):
        for col, activation in enumerate(activations):
            ax = axes[row, col]
            ax.grid(False)
            accuracy, diverged, total = _outcome_cells(runs, activation, optimizer, inits, depths)
            image = ax.imshow(np.ma.masked_invalid(accuracy), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
            for i in range(len(inits)):
                for j in range(len(depths)):
                    if diverged[i, j]:
                        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="xx",
                                               edgecolor="0.25", linewidth=0))
                    dark = np.isfinite(accuracy[i, j]) and accuracy[i, j] < 0.6
                    text = _cell_text(accuracy[i, j], diverged[i, j], total[i, j])
                    # A white box keeps the text legible over the hatching.
                    box = {"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.0} if diverged[i, j] else None
                    ax.text(j, i, text, ha="center", va="center", fontsize=6.5, bbox=box,
                            color="black" if box or not dark else "white")
            ax.set_xticks(range(len(depths)), [str(depth) for depth in depths])
            ax.set_yticks(range(len(inits)), inits if col == 0 else [""] * len(inits))
            ax.set_title(f"{activation} · {optimizer}")
    label_outer(axes, "depth", "init")
    fig.colorbar(image, ax=axes, label="final validation accuracy", shrink=0.8)
    suptitle(fig, title)
    return fig
