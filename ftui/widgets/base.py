"""What every ftui screen shares: one route for worker errors, the typed app, and a stale marker.

Workers of ftui are started with ``exit_on_error=False``, so an error never closes the app. A
failed worker's ``Worker.StateChanged`` goes only to the node that started it (it does not
bubble), so every node that starts workers (screens, modal screens, widgets such as the prepare
check) mixes in :class:`ReportsWorkerErrors`: the error goes to ``app.report_error``, labelled by
the worker's name, and then to the node's :meth:`~ReportsWorkerErrors.worker_failed` for a
screen's own reaction (a status line, a stage to go back to).

``StaleNotice`` is a one-line banner that shows itself while the active profile is offline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from textual import on
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState

from ftui.cache import read_off_thread

if TYPE_CHECKING:
    from textual.dom import DOMNode

    from ftui.app import FtuiApp
    from ftui.cache import ProfileCache
    from ftui.client import Client

T = TypeVar("T")


if TYPE_CHECKING:
    _Node = DOMNode
else:
    _Node = object  # a mixin: Textual finds its handler through the class's MRO


class ReportsWorkerErrors(_Node):
    """Mixin: this node's failed workers become one notification each (``app.report_error``)."""

    #: what a failed worker was doing, by worker name (default: the name itself)
    WORKER_WHAT: ClassVar[dict[str, str]] = {}

    @property
    def ftui(self) -> FtuiApp:
        return cast("FtuiApp", self.app)

    def worker_what(self, worker: Worker) -> str:
        name = worker.name or worker.group
        return self.WORKER_WHAT.get(name, name)

    def worker_failed(self, worker: Worker, error: BaseException) -> None:
        """A worker of this node failed and has been reported: put the screen back in order."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        error = event.worker.error
        if event.state == WorkerState.ERROR and error is not None:
            self.ftui.report_error(error, self.worker_what(event.worker))
            self.worker_failed(event.worker, error)


class FtuiScreen(ReportsWorkerErrors, Screen):
    """Base of ftui's screens."""

    async def cache_then_server(
        self,
        read: Callable[[ProfileCache], T],
        fetch: Callable[[Client], Awaitable[T]],
        show: Callable[[T, str], None],
        *,
        what: str,
        quiet: bool = True,
        from_cache: bool = True,
    ) -> bool:
        """Show what the cache holds (``show(items, "cache")``), then what the server says
        (``show(items, "server")``). True when the server answered.

        The cache is read off the UI thread and best effort. When the server cannot be reached,
        a background load (``quiet``) says nothing if the app already knows it is offline:
        offline is said once, by the app's notice and the stale banner.
        """
        from ftui.client import APIConnectionError

        app = self.ftui
        if from_cache:
            cached = await read_off_thread(read, app.cache)
            if cached:
                show(cached, "cache")
        try:
            client = await app.api()
            fresh = await fetch(client)
        except APIConnectionError as exc:
            if not quiet or app.online is not False:
                app.report_error(exc, what)
            return False
        app.report_ok()
        show(fresh, "server")
        return True


class FtuiModal(ReportsWorkerErrors, ModalScreen[Any]):
    """Base of ftui's modal screens that start workers."""


class TableScreen(FtuiScreen):
    """A section screen built around one :class:`~ftui.widgets.table.VimDataTable` (its ``table``,
    whose rows are keyed by id); actions that need a row follow the cursor."""

    TABLE_ID: ClassVar[str] = ""

    @property
    def table(self) -> DataTable:
        return self.query_one(f"#{self.TABLE_ID}", DataTable)

    def selected_id(self) -> str | None:
        """The key of the row under the cursor (None when the table is empty)."""
        found = self.query(f"#{self.TABLE_ID}")
        table = found.first(DataTable) if found else None
        if table is None or not table.row_count:
            return None
        try:
            return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        except Exception:  # noqa: BLE001 - no row under the cursor
            return None

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
