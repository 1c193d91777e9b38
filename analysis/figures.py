"""Figures: the style and the helpers every figure shares (the per-layer grid, axes, colours,
seed bands, saving); the report's figures themselves are drawn in analysis.sections, the named
studies' in analysis.study_*.

    fig = analysis.sections.grad_norm.fig_grad_norm_init(frames.layer_stats, frames.runs)
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
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator

from . import tables
from .tables import FINAL, INIT

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


def layer_grid(layer_stats, runs, stat, when, title, theory=None):
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


# ---------------------------------------------------------------------------
# Gradient ratio between the first and the last layer
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Gradient norm over layer x training step
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Training curves
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# One run in detail: activations and saturation during training
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Histograms at initialization
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Outcomes
# ---------------------------------------------------------------------------


