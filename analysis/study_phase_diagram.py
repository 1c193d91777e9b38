"""Study phase_diagram (conf/experiment/phase_diagram.yaml; Schoenholz et al. 2017): tanh networks over
sigma_w^2 and depth. Their final validation accuracy on the grid with the mean-field depth scale 6 |xi|
(nncore.theory) drawn over it, the order-to-chaos transition, and how many cells train inside and
beyond 6 |xi|.
"""
import numpy as np
from matplotlib.colors import Normalize

from experiments.images import cell_edges
from nncore import theory as mf

from .figures import new_figure, no_data_figure, save_figure, styled, suptitle
from .sections.section import figure_lines


def phase_table(runs):
    """Final val accuracy over (sigma_w^2, depth), one cell per configuration (mean over seeds)."""
    table = runs.assign(sigma_w2=np.round(runs["sigma_w"] ** 2, 3))
    return table.pivot_table(index="depth", columns="sigma_w2", values="acc/val", aggfunc="mean").sort_index()


def six_xi(sigma_w2_values, sigma_b2):
    """6 |xi|: xi = -1/ln chi(q*) is negative on the chaotic side, where gradients explode."""
    return np.array([6 * abs(mf.depth_scale("tanh", s, sigma_b2)) for s in sigma_w2_values])


@styled
def fig_phase_diagram(runs, sigma_b2):
    title = f"Trainability of tanh networks, sigma_b^2 = {sigma_b2:.3g}"
    if runs.empty or runs["sigma_w"].isna().all():
        return no_data_figure(title, "no runs with init.sigma_w")
    grid = phase_table(runs)
    fig, axes = new_figure(1, 1, extra_width=1.0)
    ax = axes[0, 0]
    sw2, depths = grid.columns.to_numpy(float), grid.index.to_numpy(float)
    mesh = ax.pcolormesh(cell_edges(sw2), cell_edges(depths), grid.to_numpy(float), cmap="viridis",
                         norm=Normalize(0, 1), shading="flat")
    fig.colorbar(mesh, ax=ax, label="final val accuracy")
    fine = np.linspace(sw2.min(), sw2.max(), 200)
    curve = six_xi(fine, sigma_b2)
    ax.plot(fine, np.clip(curve, 0, depths.max() * 1.5), color="white", linestyle="--", label="6 |xi| (mean field)")
    ax.set(xlabel="sigma_w^2", ylabel="depth (hidden layers)", ylim=(cell_edges(depths)[0], cell_edges(depths)[-1]))
    ax.legend(loc="upper right", fontsize=7)
    suptitle(fig, title)
    return fig


def phase_diagram(frames, figure_dir):
    runs = frames.runs
    sigma_b2 = float(np.nanmedian(runs["sigma_b"] ** 2)) if runs["sigma_b"].notna().any() else 0.05
    save_figure(fig_phase_diagram(runs, sigma_b2), figure_dir, "phase_diagram")
    lines = ["## Schoenholz et al. 2017: the trainability phase diagram", ""]
    lines += figure_lines("phase_diagram", "Phase diagram", "Final validation accuracy of tanh networks over "
                           "sigma_w^2 and depth, with the mean-field 6 |xi| curve (dashed), xi = -1/ln chi(q*) the "
                           "depth scale of the gradients (vanishing below the transition, exploding above): networks "
                           "deeper than about 6 |xi| should not train.")
    if runs["sigma_w"].isna().all():
        return lines
    grid = phase_table(runs)
    classes = runs["n_out"].dropna().unique()
    if len(classes) != 1:
        lines += ["- No trainability threshold: chance accuracy needs one number of classes (the runs' n_out "
                  f"tags give {len(classes)}).", ""]
        return lines
    chance = 1.0 / float(classes[0])  # uniform guessing among the network's output classes
    threshold = chance + 0.5 * (np.nanmax(grid.to_numpy()) - chance)
    inside, outside = [], []
    for depth in grid.index:
        for s, acc in grid.loc[depth].items():
            if np.isfinite(acc):
                (inside if depth <= six_xi([s], sigma_b2)[0] else outside).append(acc >= threshold)
    critical = mf.critical_sigma_w2("tanh", sigma_b2)
    lines.append(f"- Mean field puts the order-to-chaos transition at sigma_w^2 = {critical:.3f}, where xi diverges.")
    best_col = grid.columns[np.nanargmax(np.nanmean(grid.to_numpy(), axis=0))]
    lines.append(f"- Highest mean accuracy over depths at sigma_w^2 = {best_col:g}; the deepest trainable network "
                 f"(val accuracy >= {threshold:.2f}, halfway from chance to the best) has depth "
                 f"{_deepest_trainable(grid, threshold)}.")
    if inside and outside:
        lines.append(f"- Trainable: {np.mean(inside):.0%} of {len(inside)} cells with depth <= 6 |xi| and "
                     f"{np.mean(outside):.0%} of {len(outside)} cells beyond it.")
    lines.append("")
    return lines


def _deepest_trainable(grid, threshold):
    ok = grid[(grid >= threshold).any(axis=1)]
    return int(ok.index.max()) if not ok.empty else "none"
