"""What every ftui screen shares: worker errors become notifications, and a stale marker.

``FtuiScreen`` routes a failed worker of the screen to ``app.report_error`` (workers of ftui
are started with ``exit_on_error=False``, so an error never closes the app). ``StaleNotice``
is a one-line banner that shows itself while the active profile is offline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import on
from textual.screen import Screen
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState

if TYPE_CHECKING:
    from ftui.app import FtuiApp


class FtuiScreen(Screen):
    """Base of ftui's screens: typed ``ftui`` accessor and the worker error router."""

    #: what a failed worker of this screen was doing, by worker name (default: the name)
    WORKER_WHAT: dict[str, str] = {}

    @property
    def ftui(self) -> FtuiApp:
        return cast("FtuiApp", self.app)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            name = event.worker.name or event.worker.group
            self.ftui.report_error(event.worker.error, self.WORKER_WHAT.get(name, name))


class TableScreen(FtuiScreen):
    """A section screen built around one DataTable (`table`): j/k move, bindings follow the row."""

    @property
    def table(self) -> DataTable:
        raise NotImplementedError

    def action_cursor(self, delta: int) -> None:
        if delta > 0:
            self.table.action_cursor_down()
        else:
            self.table.action_cursor_up()

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self.refresh_bindings()  # actions that need a selected row show or grey out


class StaleNotice(Static):
    """``✖ offline — showing cached data from HH:MM`` while the profile cannot be reached."""

    DEFAULT_CSS = """
    StaleNotice { height: 1; width: 1fr; display: none; background: $warning 30%; }
    StaleNotice.-shown { display: block; }
    """

    def __init__(self, what: str = "cached data", **kwargs) -> None:
        super().__init__("", **kwargs)
        self.what = what
        self.since: str | None = None

    def on_mount(self) -> None:
        self.watch(self.app, "online", self._online_changed)

    def set_since(self, since: str | None) -> None:
        self.since = since
        self._online_changed(getattr(self.app, "online", None))

    def _online_changed(self, online: bool | None) -> None:
        stale = online is False
        self.set_class(stale, "-shown")
        if stale:
            profile = getattr(getattr(self.app, "profile", None), "name", "the server")
            when = f" from {self.since}" if self.since else ""
            self.update(f"✖ STALE: {profile} is offline; showing {self.what}{when}")
