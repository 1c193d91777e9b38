"""A run's images: gradient-norm profiles (at most MAX_PROFILE_IMAGES, the first and last probe among them) and a heatmap."""
import numpy as np
import pandas as pd

from experiments import images


def _layer_stats(steps, n_layers, zero_at=None):
    rows = []
    for step in steps:
        for layer in range(1, n_layers + 1):
            value = 0.0 if (step, layer) == zero_at else 10.0 ** (-layer - step / 100)
            rows += [(step, layer, "grad_norm", value), (step, layer, "act_var", 1.0)]
    return pd.DataFrame(rows, columns=["step", "layer", "stat", "value"])


def test_grad_norm_matrix_is_log10_with_nan_for_zero():
    steps, layers, grid = images.grad_norm_matrix(_layer_stats([0, 20, 25], 4, zero_at=(20, 2)))
    assert list(steps) == [0, 20, 25] and list(layers) == [1, 2, 3, 4]
    assert grid[0, 0] == -1.0 and grid[3, 2] == -4.25
    assert np.isnan(grid[1, 1]) and np.isfinite(grid).sum() == 11


def test_render_profiles_at_the_first_and_last_probe_and_a_heatmap():
    rendered = images.render(_layer_stats([0, 20, 40], 51), "run")
    assert [(key, step) for key, step, _ in rendered] == [
        ("grad_norm_profile", 0), ("grad_norm_profile", 40), ("grad_norm_heatmap", 40)]
    for _, _, rgb in rendered:
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert rendered[0][2].shape[:2] == images.PROFILE_SIZE[::-1]
    assert not np.array_equal(rendered[0][2], rendered[1][2])  # the line moves between steps
    assert images.render(_layer_stats([0], 3, zero_at=None).assign(value=0.0), "run") == []


def test_profile_steps_are_capped_and_keep_the_ends():
    steps = list(range(0, 1000, 10))
    picked = images.profile_steps(steps, limit=20)
    assert len(picked) == 20 and picked[0] == 0 and picked[-1] == 990
    assert images.profile_steps([0, 5], limit=20) == [0, 5]
    study = images.render(_layer_stats(list(range(0, 345, 20)) + [345], 5), "run")  # the default study's probes
    assert [(key, step) for key, step, _ in study] == [
        ("grad_norm_profile", 0), ("grad_norm_profile", 345), ("grad_norm_heatmap", 345)]
    assert len(images.profile_steps(list(range(0, 345, 20)) + [345], limit=8)) == 8


def test_colormap_ends_are_viridis_and_nan_is_grey():
    rgb = images.colormap(np.array([0.0, 1.0, np.nan]), 0.0, 1.0)
    assert rgb.tolist() == [[68, 1, 84], [253, 231, 37], list(images.MISSING)]


def test_nice_ticks():
    assert images.nice_ticks(-6.2, 0.3) == [-6, -4, -2, 0]  # at most 6 ticks: steps of 2
    assert images.nice_ticks(1, 51) == [10, 20, 30, 40, 50]
