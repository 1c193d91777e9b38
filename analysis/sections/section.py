"""The report's sections: a figure section (what it draws, what the figure shows, what the data
says) and a text section, both read from one ReportInput.

    section = FigureSection(name, section, heading, draw, caption, observe)
    section.blocks(3, frames)     # "### Figure 3. <heading>", image, caption, observations
    text = TextSection(name, lines)
    text.blocks(report)           # its lines (from a ReportInput) as blocks

``draw(frames, theory)`` returns the matplotlib Figure saved as figures/<name>.png and .svg;
``caption(frames)`` and ``observe(frames)`` return its caption and its sentences, computed from
the same run choices as the figure.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..blocks import blocks_of
from ..figures import SEED_BAND, seed_count

FIGURE_DIR = "figures"


@dataclass(frozen=True)
class ReportInput:
    """What the report's sections read."""
    frames: object                 # the MLP runs' Frames, with the diagnosis (analysis.diagnosis.with_diagnosis)
    recurrent_frames: object       # the recurrent runs' Frames (analysis.recurrent.split)
    everything: object             # all the runs' Frames, for a named study's section
    study: Optional[str] = None    # the named experiment (conf/experiment/) whose section comes first
    figure_dir: Optional[Path] = None  # where the sections that draw their own figures (the named study,
    # the recurrent runs') save them; None leaves those sections out (the markdown of the rest alone)

    @property
    def has_mlp_sections(self):
        """False for a report of recurrent runs alone; an empty selection still gets the MLP sections,
        which say that they have no data."""
        return not self.frames.runs.empty or self.recurrent_frames.runs.empty

    def includes(self, section):
        """Whether the report has ``section`` (a TextSection or FigureSection): one about MLP runs
        (``mlp``) only when it has MLP sections."""
        return not section.mlp or self.has_mlp_sections


@dataclass(frozen=True)
class TextSection:
    """A section of text (its own "## " heading included), which may draw its own figures."""
    name: str                      # the blocks' section (analysis.blocks)
    lines: Callable                # (ReportInput) -> [markdown line]; [] leaves the section out
    mlp: bool = False              # about MLP runs: left out of a report of recurrent runs alone

    def blocks(self, report):
        return blocks_of(self.name, self.lines(report))


@dataclass(frozen=True)
class FigureSection:
    """One figure of the report: how to draw it, what it shows, what it says."""
    name: str                      # file stem in figures/
    section: str
    heading: str
    draw: Callable                 # (frames, theory) -> Figure
    caption: Callable              # (frames) -> str: what the figure shows
    observe: Callable              # (frames) -> [sentence]: what the data says
    mlp = True                     # drawn from MLP runs (a class attribute, not a field)

    def lines(self, number, frames):
        """The markdown of the figure: heading, image, caption, observations."""
        sentences = self.observe(frames)
        return [f"### Figure {number}. {self.heading}", "", *figure_lines(self.name, self.heading, self.caption(frames)),
                *[f"- {sentence}" for sentence in sentences], ""]

    def blocks(self, number, frames):
        """``lines`` as blocks of the figure's report section."""
        return blocks_of(self.section, self.lines(number, frames))


def figure_lines(name, title, caption):
    """The markdown of a saved figure figures/<name>.png: the image, then its caption in italics with a
    link to the SVG (the report's figures and the named studies' alike)."""
    return [f"![{title}]({FIGURE_DIR}/{name}.png)", "", f"*{caption}* ([SVG]({FIGURE_DIR}/{name}.svg))", ""]


def seed_caption(frames):
    """The captions' last sentence: how the seeds of a configuration are drawn."""
    seeds = seed_count(frames.runs)
    if seeds > 1:
        return f" Lines are the median over {seeds} seeds, the shaded band their {SEED_BAND}."
    return " One seed per configuration: no seed band (run with seed=0,1,2 for one)."
