"""The data notes: what the load skipped or found missing, and runs the theory cannot size."""
from ..theory import no_sizes_note
from .section import TextSection

NAME = "Data notes"


def notes_lines(report):
    notes = [*report.frames.notes, *[note for note in (no_sizes_note(report.frames.runs),) if note]]
    return [f"## {NAME}", "", *[f"- {note}" for note in notes]] if notes else []


SECTION = TextSection(NAME, notes_lines)
