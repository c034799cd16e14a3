"""Column widths for the terminal's width: fixed columns keep theirs, the telling ones share
the rest, and optional columns show only where they fit.

Pure arithmetic (no Textual), so the views' 80- and 160-column layouts are testable alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PADDING = 2  # a table cell's padding, one column either side
SCROLLBAR = 2  # kept free for a vertical scrollbar, so rows never shift when one appears


@dataclass(frozen=True, slots=True)
class Spec:
    """A column: `width` fixed, or flexible from `minimum` up to `want` (what its cells need).

    `optional` columns are hidden (width 0) when the others, each flexible one with all it
    wants, would not fit with them: an optional column never costs a name its characters.
    Flexible columns get room in the order given: the most telling one first. The `grow`
    column takes what is left after that (a list or an error text grows to the edge).
    """

    key: str
    width: int = 0
    minimum: int = 0
    want: int = 0
    optional: bool = False
    grow: bool = False

    @property
    def flexible(self) -> bool:
        return self.minimum > 0 or self.want > 0


def fit(room: int, specs: Sequence[Spec]) -> dict[str, int]:
    """Content widths per column for a table `room` cells wide (scrollbar included).

    A hidden column is left out of the answer. The `grow` column (else the first flexible
    one) takes what is left once every flexible column has what it wants. When even the
    minimums do not fit, the table scrolls sideways rather than cut names to nothing.
    """
    shown = list(specs)
    for spec in reversed(specs):  # hide optional columns, last first, until the rest fit
        if _least(shown) <= room - SCROLLBAR:
            break
        if spec.optional:
            shown.remove(spec)
    widths = {s.key: s.minimum if s.flexible else s.width for s in shown}
    flexible = [s for s in shown if s.flexible]
    left = room - SCROLLBAR - sum(widths.values()) - PADDING * len(shown)
    for spec in flexible:  # then each up to what it wants, in order
        extra = max(0, min(left, spec.want - spec.minimum))
        widths[spec.key] += extra
        left -= extra
    growing = next((s for s in shown if s.grow), flexible[0] if flexible else None)
    if growing is not None and left > 0:
        widths[growing.key] += left
    return widths


def _least(specs: Sequence[Spec]) -> int:
    """The room the columns need: optional ones their least, the others all they want."""
    return sum(
        PADDING + ((s.minimum if s.optional else max(s.minimum, s.want)) if s.flexible else s.width)
        for s in specs
    )
