"""A run's images, drawn from its layer_stats history and logged with ``MlflowClient.log_image(key, step)``,
so that the MLflow UI's chart view compares runs in an image grid with a step slider:

  grad_norm_profile   log10 ||dL/dW_l|| against layer l at a probe step (image step = training step),
                      with the step-0 profile in grey for reference; at most MAX_PROFILE_IMAGES of
                      them, evenly spread over the probe steps, the first and the last among them
  grad_norm_heatmap   log10 ||dL/dW_l|| over layer x training step, one image (step = the last step)

The y range of a run's profiles is fixed over its steps, so that the slider shows the profile moving.
They are drawn with Pillow (which log_image needs anyway) on NumPy arrays: importing matplotlib
alone would cost a job more than its images may (at most 10% of a depth-50 job).
"""
import math

import numpy as np

PROFILE_KEY = "grad_norm_profile"
HEATMAP_KEY = "grad_norm_heatmap"
# MLflow spends ~18 ms on each logged image (PNG, a WebP thumbnail, two artifact files and a tag),
# about 15 times what drawing it costs; one image per probe step (19 in the default study) took
# 0.35 s, a third of a shallow job. The profile is logged at step 0 and at the last probe step; the
# heatmap shows every probe step in between.
MAX_PROFILE_IMAGES = 2
PROFILE_SIZE = (360, 240)        # pixels
HEATMAP_SIZE = (420, 260)
MARGIN = {"left": 50, "right": 12, "top": 22, "bottom": 34}
COLORBAR = 60                    # the heatmap's right margin: colour bar and its labels
BLUE, GREY, GRID, INK, MISSING = (31, 119, 180), (170, 170, 170), (228, 228, 228), (40, 40, 40), (215, 215, 215)
# viridis at 0, 1/9, ..., 1 (matplotlib's values); linear interpolation between them is indistinguishable.
VIRIDIS = np.array([[68, 1, 84], [72, 40, 120], [62, 73, 137], [49, 104, 142], [38, 130, 142],
                    [31, 158, 137], [53, 183, 121], [110, 206, 88], [181, 222, 43], [253, 231, 37]], float)


def grad_norm_matrix(layer_stats):
    """(steps, layers, log10 grad_norm of shape (layers, steps), NaN where zero or non-finite)."""
    picked = layer_stats[layer_stats["stat"] == "grad_norm"]
    steps = np.sort(picked["step"].unique()).astype(np.int64)
    layers = np.sort(picked["layer"].unique()).astype(np.int64)
    grid = np.full((layers.size, steps.size), np.nan)
    values = picked["value"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(np.isfinite(values) & (values > 0), np.log10(values), np.nan)
    grid[np.searchsorted(layers, picked["layer"].to_numpy()), np.searchsorted(steps, picked["step"].to_numpy())] = logs
    return steps, layers, grid


def profile_steps(steps, limit=MAX_PROFILE_IMAGES):
    """The probe steps that get a profile image: all of them, or ``limit`` evenly spread ones."""
    steps = list(steps)
    if len(steps) <= limit:
        return steps
    picks = np.unique(np.round(np.linspace(0, len(steps) - 1, limit)).astype(int))
    return [steps[i] for i in picks]


def nice_ticks(low, high, most=6):
    """Round tick values covering [low, high]: steps of 1, 2 or 5 times a power of ten."""
    span = max(high - low, 1e-12)
    raw = span / most
    base = 10 ** math.floor(math.log10(raw))
    step = next(m * base for m in (1, 2, 5, 10) if m * base >= raw)
    return [t * step for t in range(math.ceil(low / step), math.floor(high / step) + 1)]


def colormap(values, low, high):
    """RGB uint8 of ``values`` on viridis over [low, high]; MISSING where NaN."""
    t = np.clip((values - low) / (high - low if high > low else 1.0), 0.0, 1.0) * (len(VIRIDIS) - 1)
    i = np.minimum(np.floor(np.nan_to_num(t)).astype(int), len(VIRIDIS) - 2)
    f = (np.nan_to_num(t) - i)[..., None]
    rgb = VIRIDIS[i] * (1 - f) + VIRIDIS[i + 1] * f
    rgb[np.isnan(values)] = MISSING
    return rgb.round().astype(np.uint8)


class Axes:
    """A plot area in pixels with data limits: maps data to pixels and draws its frame, ticks and labels."""

    def __init__(self, draw, box, xlim, ylim):
        self.draw, self.box, self.xlim, self.ylim = draw, box, xlim, ylim

    def x(self, value):
        x0, _, x1, _ = self.box
        return x0 + (value - self.xlim[0]) / (self.xlim[1] - self.xlim[0]) * (x1 - x0)

    def y(self, value):
        _, y0, _, y1 = self.box
        return y1 - (value - self.ylim[0]) / (self.ylim[1] - self.ylim[0]) * (y1 - y0)

    def frame(self, font, xticks, yticks, grid=True):
        x0, y0, x1, y1 = self.box
        for value in xticks:
            px = self.x(value)
            if grid:
                self.draw.line([(px, y0), (px, y1)], fill=GRID)
            self.draw.line([(px, y1), (px, y1 + 3)], fill=INK)
            self.draw.text((px, y1 + 4), _label(value), fill=INK, font=font, anchor="mt")
        for value in yticks:
            py = self.y(value)
            if grid:
                self.draw.line([(x0, py), (x1, py)], fill=GRID)
            self.draw.line([(x0 - 3, py), (x0, py)], fill=INK)
            self.draw.text((x0 - 5, py), _label(value), fill=INK, font=font, anchor="rm")
        self.draw.rectangle(self.box, outline=INK)

    def polyline(self, xs, ys, fill, width=1, dots=0):
        """A line through the finite points, broken where y is NaN."""
        points = []
        for x, y in zip(xs, ys):
            if np.isfinite(y):
                points.append((self.x(x), self.y(y)))
                if dots:
                    px, py = points[-1]
                    self.draw.ellipse([px - dots, py - dots, px + dots, py + dots], fill=fill)
                continue
            if len(points) > 1:
                self.draw.line(points, fill=fill, width=width)
            points = []
        if len(points) > 1:
            self.draw.line(points, fill=fill, width=width)


def _label(value):
    return f"{value:g}" if value != 0 else "0"


def _vertical_text(image, xy, text, font):
    """``text`` rotated 90 degrees, centred at ``xy`` (Pillow draws text horizontally only)."""
    from PIL import Image, ImageDraw
    left, top, right, bottom = font.getbbox(text)
    strip = Image.new("RGB", (right - left + 2, bottom - top + 2), "white")
    ImageDraw.Draw(strip).text((1 - left, 1 - top), text, fill=INK, font=font)
    strip = strip.rotate(90, expand=True)
    image.paste(strip, (int(xy[0] - strip.width / 2), int(xy[1] - strip.height / 2)))


def _canvas(size, title, xlabel, ylabel, right=MARGIN["right"]):
    from PIL import Image, ImageDraw, ImageFont
    font = ImageFont.load_default(size=10)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    box = (MARGIN["left"], MARGIN["top"], size[0] - right, size[1] - MARGIN["bottom"])
    draw.text(((box[0] + box[2]) / 2, 4), title, fill=INK, font=font, anchor="mt")
    draw.text(((box[0] + box[2]) / 2, size[1] - 4), xlabel, fill=INK, font=font, anchor="mb")
    _vertical_text(image, (9, (box[1] + box[3]) / 2), ylabel, font)
    return image, draw, box, font


def _layer_ticks(n_layers):
    return [1] + [t for t in nice_ticks(1, n_layers, most=6) if t > 1]


def render(layer_stats, title=""):
    """[(key, step, RGB uint8 array)] of one run's images; [] when it has no finite gradient norm."""
    from PIL import ImageDraw

    steps, layers, grid = grad_norm_matrix(layer_stats)
    if not np.isfinite(grid).any():
        return []
    low, high = float(np.nanmin(grid)), float(np.nanmax(grid))
    pad = max(0.5, 0.05 * (high - low))
    images = []

    base, draw, box, font = _canvas(PROFILE_SIZE, f"{title}  (grey: step 0)".strip(), "layer l",
                                    "log10 ||dL/dW_l||")
    axes = Axes(draw, box, (0.5, layers[-1] + 0.5), (low - pad, high + pad))
    axes.frame(font, _layer_ticks(int(layers[-1])), nice_ticks(low - pad, high + pad))
    if steps[0] == 0:
        axes.polyline(layers, grid[:, 0], GREY)
    for step in profile_steps(steps):
        image = base.copy()
        axes.draw = ImageDraw.Draw(image)
        axes.polyline(layers, grid[:, np.searchsorted(steps, step)], BLUE, width=2, dots=2 if len(layers) <= 60 else 0)
        axes.draw.text((box[2] - 4, box[1] + 3), f"step {step}", fill=INK, font=font, anchor="rt")
        images.append((PROFILE_KEY, int(step), np.asarray(image)))

    image, draw, box, font = _canvas(HEATMAP_SIZE, f"{title}  log10 ||dL/dW_l||".strip(), "training step", "layer l",
                                     right=COLORBAR)
    x_edges, y_edges = cell_edges(steps), cell_edges(layers)
    axes = Axes(draw, box, (x_edges[0], x_edges[-1]), (y_edges[0], y_edges[-1]))
    # Each pixel shows the cell its centre falls in (steps may be unevenly spaced: the last one).
    px = np.arange(box[0] + 1, box[2])
    py = np.arange(box[1] + 1, box[3])
    cols = np.clip(np.searchsorted(x_edges, axes.xlim[0] + (px + 0.5 - box[0]) / (box[2] - box[0])
                                   * (axes.xlim[1] - axes.xlim[0])) - 1, 0, steps.size - 1)
    rows = np.clip(np.searchsorted(y_edges, axes.ylim[1] - (py + 0.5 - box[1]) / (box[3] - box[1])
                                   * (axes.ylim[1] - axes.ylim[0])) - 1, 0, layers.size - 1)
    pixels = np.asarray(image).copy()
    pixels[box[1] + 1:box[3], box[0] + 1:box[2]] = colormap(grid, low, high)[rows][:, cols]
    from PIL import Image
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    axes.draw = draw
    axes.frame(font, nice_ticks(steps[0], steps[-1], most=5) if steps[-1] > steps[0] else [int(steps[0])],
               _layer_ticks(int(layers[-1])), grid=False)
    # Colour bar: grey (missing: zero or non-finite) below the scale.
    bar = (box[2] + 10, box[1], box[2] + 22, box[3])
    levels = np.linspace(high, low, bar[3] - bar[1])[:, None].repeat(bar[2] - bar[0], axis=1)
    image.paste(Image.fromarray(colormap(levels, low, high)), bar[:2])
    draw.rectangle(bar, outline=INK)
    for value in nice_ticks(low, high, most=5):
        y = bar[3] - (value - low) / ((high - low) or 1.0) * (bar[3] - bar[1])
        draw.line([(bar[2], y), (bar[2] + 3, y)], fill=INK)
        draw.text((bar[2] + 5, y), _label(value), fill=INK, font=font, anchor="lm")
    draw.rectangle((bar[0], bar[3] + 6, bar[2], bar[3] + 14), fill=MISSING, outline=INK)
    draw.text((bar[2] + 5, bar[3] + 10), "none", fill=INK, font=font, anchor="lm")
    images.append((HEATMAP_KEY, int(steps[-1]), np.asarray(image)))
    return images


def cell_edges(centres):
    """Cell edges around sorted centres (a single centre gets a cell of width 1)."""
    centres = np.asarray(centres, dtype=float)
    if centres.size == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    mid = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]])


def log_images(client, run_id, layer_stats, title="", retry=None):
    """Render and log the run's images; returns how many were logged."""
    from PIL import Image

    call = retry or (lambda fn, *a, **k: fn(*a, **k))
    images = render(layer_stats, title)
    for key, step, rgb in images:
        call(client.log_image, run_id, Image.fromarray(rgb), key=key, step=step)
    return len(images)
