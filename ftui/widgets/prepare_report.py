"""The report of the prepare checks (``ftui.prepare.analyze``), with each optional fix a toggle.

Shared by the prepare screen and the files screen's upload dialog. One row per finding: the fix
marker (``[x]``/``[ ]`` for optional fixes, ``always`` for necessary ones), the kind as a glyph
and a word (never colour alone), and the first line of the message. The highlighted finding's
whole message, its fix and the rows it names are shown under the table. ``space`` toggles the
highlighted optional fix; ``a`` accepts every optional fix, or none when all are accepted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from ftui.textsafe import visible

if TYPE_CHECKING:
    from ftui.prepare import PrepareError, Report

#: kind → (glyph, word, style); ANSI colours, and the word says it without them.
KIND_STYLE = {
    "error": ("✖", "error", "bold red"),
    "necessary": ("●", "necessary", "yellow"),
    "optional": ("○", "optional", "cyan"),
    "warning": ("⚠", "warning", "magenta"),
    "info": ("ℹ", "info", ""),
}


def kind_text(kind: str) -> Text:
    glyph, word, style = KIND_STYLE.get(kind, ("?", kind, ""))
    return Text(f"{glyph} {word}", style=style)


def summary(report: Report) -> str:
    """One or two lines about the data as a whole."""
    parts = [
        f"{report.format.upper()} · {report.schema}",
        f"{report.n_records:,} {report.unit}s read → {report.n_examples:,} examples",
    ]
    if report.task_type:
        parts.append(report.task_type)
    if report.classes:
        k = len(report.classes)
        parts.append(f"{k} class{'es' if k != 1 else ''}")
    line = " · ".join(parts)
    tok = report.tokens
    if tok is not None:
        how = "counted" if tok.exact else "estimated"
        ctx = f", {tok.over_context} over {tok.context:,}" if tok.context else ""
        line += (
            f"\ntokens ({how}): {tok.total:,} total, mean {tok.mean:,.0f}, "
            f"p95 {tok.p95:,}, max {tok.max:,}{ctx}"
        )
    verdict = (
        "✖ cannot be used as it is (see the errors)"
        if report.errors
        else f"✔ usable · {len(report.necessary)} necessary and {len(report.optional)} "
        "optional fixes"
    )
    return f"{line}\n{verdict}"


class PrepareReportView(Vertical):
    """A prepare report with toggles for the optional fixes."""

    DEFAULT_CSS = """
    PrepareReportView { height: 1fr; }
    PrepareReportView > .prep-summary { height: auto; padding: 0 1; }
    PrepareReportView > DataTable { height: 1fr; min-height: 4; overflow-x: hidden; }
    PrepareReportView > VerticalScroll { height: 5; border-top: solid $panel-lighten-2; }
    PrepareReportView > VerticalScroll > Static { padding: 0 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle", "Toggle fix", id="prepare.toggle"),
        Binding("a", "toggle_all", "All/none", id="prepare.all"),
    ]

    class Changed(Message):
        """The set of accepted optional fixes changed."""

        def __init__(self, view: PrepareReportView) -> None:
            super().__init__()
            self.view = view

        @property
        def control(self) -> PrepareReportView:
            return self.view

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.report: Report | None = None
        self.accepted: set[str] = set()
        self._table: DataTable = DataTable(cursor_type="row", zebra_stripes=False)
        self._summary = Static("", classes="prep-summary", markup=False)
        self._detail = Static("", markup=False)

    def compose(self) -> ComposeResult:
        yield self._summary
        yield self._table
        with VerticalScroll(can_focus=False):
            yield self._detail

    def on_mount(self) -> None:
        self._table.add_column("fix", key="fix", width=8)
        self._table.add_column("kind", key="kind", width=11)
        self._table.add_column("finding", key="finding")

    def focus(self, scroll_visible: bool = True) -> PrepareReportView:
        self._table.focus(scroll_visible)
        return self

    # -- content -----------------------------------------------------------------------------
    def show_report(self, report: Report, accepted: set[str] | None = None) -> None:
        """Show ``report``; every optional fix starts accepted (as the CLI's default is yes)."""
        self.report = report
        self.accepted = set(accepted) if accepted is not None else {f.id for f in report.optional}
        self._summary.update(summary(report))
        table = self._table
        table.clear()
        for f in report.findings:
            first = visible(f.message.split("\n", 1)[0])
            table.add_row(self._marker(f.id, f.kind), kind_text(f.kind), first, key=f.id)
        if not report.findings:
            self._detail.update("No findings: the file can be used as it is.")
        else:
            table.move_cursor(row=0)
            self._show_detail(0)
        self.post_message(self.Changed(self))

    def show_error(self, error: PrepareError | BaseException) -> None:
        """The file could not be read at all: say where and why."""
        self.report = None
        self.accepted = set()
        self._table.clear()
        self._summary.update("✖ the checks could not read this file")
        self._detail.update(visible(str(error)))
        self.post_message(self.Changed(self))

    def show_message(self, text: str) -> None:
        self.report = None
        self.accepted = set()
        self._table.clear()
        self._summary.update(text)
        self._detail.update("")

    def _marker(self, finding_id: str, kind: str) -> Text:
        if kind == "optional":
            on = finding_id in self.accepted
            return Text("[x] fix" if on else "[ ] skip", style="bold" if on else "dim")
        if kind == "necessary":
            return Text("always")
        return Text("—", style="dim")

    def _show_detail(self, row: int) -> None:
        if self.report is None or not 0 <= row < len(self.report.findings):
            return
        f = self.report.findings[row]
        glyph, word, _ = KIND_STYLE.get(f.kind, ("?", f.kind, ""))
        head = f"{glyph} {word} · {f.id}"
        if f.kind == "optional":
            head += " · [x] fix accepted" if f.id in self.accepted else " · [ ] fix skipped"
        elif f.kind == "necessary":
            head += " · always fixed"
        lines = [head]
        if f.action:
            lines.append(f"fix: {f.action}")
        lines.append(f.message)
        if f.rows:
            shown = ", ".join(str(r) for r in f.rows[:20])
            more = f" … and {len(f.rows) - 20} more" if len(f.rows) > 20 else ""
            unit = self.report.unit
            lines.append(f"{unit}s: {shown}{more}")
        self._detail.update(visible("\n".join(lines)))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_detail(event.cursor_row)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_toggle()

    # -- toggles -----------------------------------------------------------------------------
    def _refresh_markers(self) -> None:
        if self.report is None:
            return
        for f in self.report.findings:
            if f.kind == "optional":
                self._table.update_cell(f.id, "fix", self._marker(f.id, f.kind))
        self._show_detail(self._table.cursor_row)
        self.post_message(self.Changed(self))

    def set_accepted(self, finding_id: str, on: bool) -> None:
        if self.report is None or finding_id not in {f.id for f in self.report.optional}:
            return
        if on:
            self.accepted.add(finding_id)
        else:
            self.accepted.discard(finding_id)
        self._refresh_markers()

    def action_toggle(self) -> None:
        report = self.report
        if report is None or not report.findings:
            return
        row = self._table.cursor_row
        if not 0 <= row < len(report.findings):
            return
        f = report.findings[row]
        if f.kind != "optional":
            what = "always applied" if f.kind == "necessary" else "has no fix to choose"
            self.notify(f"This finding {what}.", timeout=3)
            return
        self.set_accepted(f.id, f.id not in self.accepted)

    def action_toggle_all(self) -> None:
        if self.report is None:
            return
        ids = {f.id for f in self.report.optional}
        self.accepted = set() if ids and ids <= self.accepted else ids
        self._refresh_markers()

    def fixes_text(self) -> str:
        """What applying will do, in one line."""
        if self.report is None:
            return ""
        n_opt = len(self.report.optional)
        return (
            f"{len(self.report.necessary)} necessary + {len(self.accepted)}/{n_opt} optional "
            "fixes will be applied"
        )

    def state(self) -> dict[str, Any]:
        return {"accepted": sorted(self.accepted)}
