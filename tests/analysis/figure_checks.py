"""Checks the figure tests share: a figure's main axes and colorbars, all its text, whether it is
a "no data" figure, and a titled, labelled grid of panels."""
import numpy as np
from matplotlib.figure import Figure


def main_axes(fig):
    """The axes of the figure, colorbars excluded."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def colorbars(fig):
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


def all_text(fig):
    texts = [fig.get_suptitle()]
    for ax in fig.axes:
        texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()] + [text.get_text() for text in ax.texts]
    for legend in fig.legends:
        texts += [text.get_text() for text in legend.get_texts()]
    return " ".join(texts)


def is_no_data(fig):
    return len(fig.axes) == 1 and any(text.get_text().startswith("no data:") for text in fig.axes[0].texts)


def check_grid(fig, n_rows, n_cols, xlabel, ylabel, log_y):
    """n_rows x n_cols titled panels; outer axes labelled; every panel log-y or not."""
    assert isinstance(fig, Figure)
    assert fig.get_suptitle()
    axes = np.array(main_axes(fig)).reshape(n_rows, n_cols)
    assert all(ax.get_title() for ax in axes.flat)
    assert all(ax.get_xlabel() == xlabel for ax in axes[-1, :])
    assert all(ax.get_ylabel() == ylabel for ax in axes[:, 0])
    assert all((ax.get_yscale() == "log") == log_y for ax in axes.flat)
    return axes
