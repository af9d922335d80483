"""A line chart drawn by plotext itself (not textual-plotext), sized to the widget.

plotext is imported the first time a chart is drawn, never at start-up. Each line is
downsampled to about twice the widget's width before plotting (braille cells hold two points
across), so a 100,000-step series costs what a 300-point one does. Raw lines are drawn faint and
smoothed ones bold; colours are the terminal's 16 ANSI colours, and a legend with the names is
drawn under the plot, so no line is told apart by colour alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.text import Text
from textual.widget import Widget

from ftui.results import downsample

#: plotext colour → the Rich colour of the same ANSI slot (for the legend)
COLOURS = (
    ("cyan", "cyan"),
    ("magenta", "magenta"),
    ("orange", "yellow"),
    ("green", "green"),
    ("blue+", "bright_blue"),
    ("red", "red"),
    ("cyan+", "bright_cyan"),
    ("magenta+", "bright_magenta"),
)
MIN_POINTS = 2


@dataclass
class Line:
    """One line: its points, colour slot and weight (``normal``, ``raw`` faint, ``smooth`` bold)."""

    name: str
    x: Sequence[float]
    y: Sequence[float]
    colour: int = 0
    weight: str = "normal"
    legend: bool = True


@dataclass
class _Plot:
    lines: list[Line] = field(default_factory=list)
    title: str = ""
    xlabel: str = "step"
    log_y: bool = False
    note: str = ""


def _figure():
    """A fresh plotext figure of our own (plotext's module-level figure is shared state)."""
    import plotext
    from plotext._plotter.plot import plot_class

    # plotext caps a plot at the size of the terminal it finds (less a prompt line); the widget
    # decides the size here, so switch that off.
    plotext.terminal.limit(False, False)
    return plot_class(plotext.terminal)


def render_chart(plot: _Plot, width: int, height: int, empty: str) -> Text:
    """The chart as Rich text of ``width`` × ``height`` cells (legend line included)."""
    lines = [ln for ln in plot.lines if len(ln.x) > 0]
    if plot.log_y:
        kept = []
        for ln in lines:
            pts = [(x, y) for x, y in zip(ln.x, ln.y, strict=False) if y > 0]
            kept.append(
                Line(
                    ln.name,
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    ln.colour,
                    ln.weight,
                    ln.legend,
                )
            )
        lines = kept
    if width < 20 or height < 5:
        return Text("(too small to draw)", style="dim")
    if not any(len(ln.x) >= MIN_POINTS for ln in lines):
        points = max((len(ln.x) for ln in lines), default=0)
        message = f"{empty} ({points} point{'s' if points != 1 else ''} so far)"
        pad = "\n" * max(0, height // 2 - 1)
        title = f"{plot.title}\n" if plot.title else ""
        return Text(f"{title}{pad}{message.center(width)}", style="dim")
    from plotext import marker, pixel

    fig = _figure()
    fig.theme("colorless")
    fig.plot_size(width, height - 1)
    fig.legend(False)
    if plot.title:
        fig.title(plot.title)
    if plot.log_y:
        fig.ruler(1).scale("log")
    for ln in lines:
        if not ln.x:
            continue
        xs, ys = downsample(ln.x, ln.y, max(10, width))
        colour = COLOURS[ln.colour % len(COLOURS)][0]
        style = {"raw": "dim", "smooth": "bold"}.get(ln.weight)
        signal = fig.signal(xs, ys, marker=marker("braille", pixel(foreground=colour, style=style)))
        # Connecting a dense, noisy line costs a segment per point (hundreds of ms at full
        # screen); once downsampled to two points per column, the dots alone read as a line.
        if ln.weight != "raw" or len(xs) < width:
            signal.lines()
        fig.draw(signal)
    text = Text.from_ansi(fig.build().string().rstrip("\n"), no_wrap=True, end="")
    text.append("\n")
    text.append_text(legend_text(lines, plot.xlabel, plot.note, width))
    return text


def legend_text(lines: Sequence[Line], xlabel: str, note: str, width: int) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"x: {xlabel}  ", style="dim")
    for ln in lines:
        if not ln.legend:
            continue
        colour = COLOURS[ln.colour % len(COLOURS)][1]
        text.append("━━ ", style=f"bold {colour}")
        text.append(f"{ln.name}  ")
    if note:
        text.append(note, style="dim")
    text.truncate(width, overflow="ellipsis")
    return text


class MetricChart(Widget):
    """A chart of metric lines; call :meth:`plot` with new data, it redraws to its size."""

    DEFAULT_CSS = """
    MetricChart { height: 1fr; min-height: 6; width: 1fr; }
    """

    def __init__(
        self, empty: str = "Not enough data to draw yet", *, name=None, id=None, classes=None
    ):
        super().__init__(name=name, id=id, classes=classes)
        self.empty = empty
        self._plot = _Plot()
        self._cache: tuple[tuple[int, int], Text] | None = None
        self.draws = 0

    def plot(
        self,
        lines: Sequence[Line],
        *,
        title: str = "",
        xlabel: str = "step",
        log_y: bool = False,
        note: str = "",
    ) -> None:
        self._plot = _Plot(list(lines), title, xlabel, log_y, note)
        self._cache = None
        self.refresh()

    @property
    def lines(self) -> list[Line]:
        return self._plot.lines

    def render(self) -> Text:
        size = (self.content_size.width, self.content_size.height)
        if self._cache is None or self._cache[0] != size:
            self.draws += 1
            try:
                text = render_chart(self._plot, *size, self.empty)
            except Exception as exc:  # noqa: BLE001 - a chart must never take the app down
                text = Text(f"(chart could not be drawn: {exc})", style="dim")
            self._cache = (size, text)
        return self._cache[1]


def nice_number(value: float) -> str:
    if value == 0 or not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"
