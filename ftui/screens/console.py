"""The completion console: a prompt, every parameter, streamed output coloured by probability.

- Pick a model (and, side by side, a second one: the same prompt and parameters go to both at
  once, each streamed into its own pane).
- The prompt is multi-line (enter is a newline). Send with ``ctrl+j`` (a plain line feed, which
  every terminal, tmux and SSH pass through) or ``enter`` in a parameter field; never
  ``ctrl+enter``, which most terminals cannot send.
- Each output token is coloured by its probability; move the token cursor (focus the output,
  then ←/→) to see the token's probability and the top alternatives.
- Every prompt sent is kept in the history on disk (``alt+↑``/``alt+↓`` step through it,
  ``ctrl+r`` searches it).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Footer, Header, Input, Label, Select, TextArea

from ftui.cache import ProfileCache
from ftui.textsafe import visible
from ftui.widgets.base import FtuiScreen, StaleNotice
from ftui.widgets.console_history import HistoryScreen, PromptHistory
from ftui.widgets.logprob_view import LogprobView
from ftui.widgets.param_panel import ParamError, ParamPanel

if TYPE_CHECKING:
    from pathlib import Path

    from ftui.types import Model

SIDES = ("a", "b")


class ConsoleScreen(FtuiScreen):
    """Send a prompt to one model, or to two side by side, and read the output token by token."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+j", "send", "Send", id="console.send", key_display="^j", priority=True),
        Binding("ctrl+g", "stop", "Stop", id="console.stop", key_display="^g", priority=True),
        Binding(
            "ctrl+t",
            "side_by_side",
            "Compare",
            id="console.side_by_side",
            key_display="^t",
            tooltip="Side by side: the same prompt to two models",
            priority=True,
        ),
        Binding("ctrl+r", "history", "History", id="console.history", key_display="^r"),
        Binding("alt+up", "history_step(-1)", "Older prompt", id="console.older", show=False),
        Binding("alt+down", "history_step(1)", "Newer prompt", id="console.newer", show=False),
        Binding(
            "ctrl+l", "focus_prompt", "Prompt", id="console.prompt", key_display="^l", show=False
        ),
        Binding("f8", "toggle_params", "Params", id="console.params", tooltip="Show/hide"),
    ]

    WORKER_WHAT: ClassVar[dict[str, str]] = {
        "console-models": "Listing models",
        "console-history": "Reading the prompt history",
        "console-history-save": "Saving the prompt history",
    }

    side_by_side: reactive[bool] = reactive(False, init=False)

    def __init__(
        self,
        model: str | None = None,
        compare_with: str | None = None,
        *,
        history_path: Path | str | None = None,
    ) -> None:
        super().__init__()
        self.initial_model = model
        self.initial_compare = compare_with
        self.history = PromptHistory(history_path)
        self.history_pos: int | None = None  # index into history.entries while stepping
        self._draft: dict[str, Any] | None = None
        self.model_ids: list[str] = []
        self._models: list[Model] = []
        self.last_request: dict[str, Any] | None = None
        self._resumed = False
        self.set_reactive(ConsoleScreen.side_by_side, compare_with is not None)

    def compose(self) -> ComposeResult:
        yield Header()
        yield StaleNotice("cached models", id="stale")
        with Horizontal(id="console-body"):
            with Vertical(id="console-main"):
                with Horizontal(id="console-models"):
                    yield Label("model")
                    yield Select[str]([], prompt="pick a model", id="model-a", compact=True)
                    yield Label("vs", classes="-compare")
                    yield Select[str](
                        [], prompt="second model", id="model-b", compact=True, classes="-compare"
                    )
                prompt = TextArea(id="prompt", soft_wrap=True, tab_behavior="focus")
                prompt.border_title = "Prompt · ^j sends · enter is a newline"
                yield prompt
                with Horizontal(id="console-outputs"):
                    yield LogprobView("output", id="out-a")
                    yield LogprobView("output", id="out-b")
            yield ParamPanel(id="params")
        yield Footer()

    def on_mount(self) -> None:
        self.set_class(self.side_by_side, "-side-by-side")
        for mid, sel in ((self.initial_model, "a"), (self.initial_compare, "b")):
            if mid:
                self._ensure_option(mid)
                self._select(sel).value = mid
        self.query_one("#prompt", TextArea).focus()
        self._load_history()
        self._load_models()

    def on_screen_resume(self) -> None:
        if self._resumed:  # coming back to the console: models may have been trained meanwhile
            self._load_models()
        self._resumed = True  # (the first resume is the first show: on_mount loads them)

    # -- widgets -----------------------------------------------------------------------------
    def _select(self, side: str) -> Select[str]:
        return self.query_one(f"#model-{side}", Select)

    def _view(self, side: str) -> LogprobView:
        return self.query_one(f"#out-{side}", LogprobView)

    @property
    def prompt(self) -> TextArea:
        return self.query_one("#prompt", TextArea)

    @property
    def params(self) -> ParamPanel:
        return self.query_one(ParamPanel)

    def model_of(self, side: str) -> str | None:
        value = self._select(side).value
        return value if isinstance(value, str) else None

    def set_model(self, side: str, model: str | None) -> None:
        if model is None:
            self._select(side).clear()
            return
        self._ensure_option(model)
        self._select(side).value = model

    # -- models ------------------------------------------------------------------------------
    def _ensure_option(self, model_id: str) -> None:
        if model_id not in self.model_ids:
            self._set_options(self.model_ids + [model_id])

    def _set_options(self, ids: list[str]) -> None:
        self.model_ids = list(dict.fromkeys(ids))
        for side in SIDES:
            sel = self._select(side)
            keep = sel.value if isinstance(sel.value, str) else None
            sel.set_options([(self._label(m), m) for m in self.model_ids])
            if keep in self.model_ids:
                sel.value = keep

    def _label(self, model_id: str) -> str:
        # the id itself (fine-tuned ids say so: ft:… / …:ft-…); visible(): a server's string
        # never reaches the terminal as escape sequences
        return visible(model_id)

    @work(name="console-models", group="console-models", exclusive=True, exit_on_error=False)
    async def _load_models(self, quiet: bool = True) -> None:
        await self.cache_then_server(
            ProfileCache.list_models,
            lambda client: client.models.list(),
            lambda models, _source: self._show_models(models),
            what="Listing models",
            quiet=quiet,
            from_cache=not self._models,  # coming back to the console: only the server's
        )

    def _show_models(self, models: list[Model]) -> None:
        tuned = sorted((m for m in models if m.is_fine_tuned), key=lambda m: -(m.created or 0))
        base = sorted((m for m in models if not m.is_fine_tuned), key=lambda m: m.id)
        self._models = tuned + base
        extra = [m for m in (self.model_of("a"), self.model_of("b")) if m]
        self._set_options([m.id for m in self._models] + extra)
        if self.model_of("a") is None:
            last = next(
                (e.get("model") for e in reversed(self.history.entries) if e.get("model")), None
            )
            pick = (
                last if last in self.model_ids else (self.model_ids[0] if self.model_ids else None)
            )
            if pick:
                self._select("a").value = pick
        if self.side_by_side and self.model_of("b") is None:
            self._default_compare()

    def base_of(self, model_id: str) -> str | None:
        for job in self.ftui.jobs.all():
            if job.fine_tuned_model == model_id and job.model:
                return job.model
        model = next((m for m in self._models if m.id == model_id), None)
        if model is not None and model.is_fine_tuned:
            return model.parent or model.root
        return None

    def _default_compare(self) -> None:
        a = self.model_of("a")
        if a is None:
            return
        choice = self.base_of(a)
        if not choice:
            choice = next((m.id for m in self._models if m.is_fine_tuned and m.id != a), None)
        if not choice:
            choice = next((m for m in self.model_ids if m != a), None)
        if choice:
            self.set_model("b", choice)

    # -- side by side ------------------------------------------------------------------------
    def action_side_by_side(self) -> None:
        self.side_by_side = not self.side_by_side

    def watch_side_by_side(self, on: bool) -> None:
        self.set_class(on, "-side-by-side")
        if on and self.model_of("b") is None:
            self._default_compare()
        if not on:
            self._stop_side("b")
        self.notify("Side by side: on" if on else "Side by side: off", timeout=2)

    # -- sending -----------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.streaming  # shown only while there is one to stop
        return True

    @property
    def streaming(self) -> bool:
        return any(
            w.group.startswith("console-stream-") and not w.is_finished for w in self.workers
        )

    def action_send(self) -> None:
        prompt = self.prompt.text
        try:
            params = self.params.params()
        except ParamError as exc:
            self.notify(f"✖ {exc}", title="Not sent", severity="error", markup=False)
            return
        sides = ["a", "b"] if self.side_by_side else ["a"]
        models = {side: self.model_of(side) for side in sides}
        missing = [s for s in sides if not models[s]]
        if missing:
            which = "the second model" if missing == ["b"] else "a model"
            self.notify(f"✖ Pick {which} first", title="Not sent", severity="error")
            self._select(missing[0]).focus()
            return
        self.last_request = {"prompt": prompt, "models": dict(models), "params": dict(params)}
        echo_chars = len(prompt) if params.get("echo") else 0
        for side in sides:
            model = models[side]
            assert model is not None
            view = self._view(side)
            view.clear(visible(model), echo_chars=echo_chars)
            view.set_status("… streaming")
            self._stream(side, model, prompt, params)
        self.history_pos = None
        self._draft = None
        self._save_history(prompt, models.get("a"), models.get("b"), self.params.values())
        self.refresh_bindings()

    def _stream(self, side: str, model: str, prompt: str, params: dict[str, Any]) -> None:
        self.run_worker(
            self._run_stream(side, model, prompt, params),
            name=f"Completion from {model}",  # what a failure is reported as
            group=f"console-stream-{side}",
            exclusive=True,
            exit_on_error=False,
        )

    async def _run_stream(self, side: str, model: str, prompt: str, params: dict[str, Any]) -> None:
        from ftui.client import APIError

        view = self._view(side)
        started = time.monotonic()
        try:
            client = await self.ftui.api()
            async for chunk in client.completions.stream(model, prompt, **params):
                for choice in chunk.choices:
                    view.add_choice(choice)
        except asyncio.CancelledError:
            view.set_status("⊘ stopped")
            raise
        except APIError as exc:
            view.set_status(visible(f"✖ {exc.message}"))
            raise  # reported by the worker-error route
        finally:
            self.call_later(self.refresh_bindings)
        self.ftui.report_ok()
        took = time.monotonic() - started
        reasons = sorted({view.finish_reason(i) or "?" for i in view.choices}) or ["?"]
        n = len(view.tokens)
        count = f"{n} tokens · " if n else ""
        view.set_status(f"✔ done · {'/'.join(reasons)} · {count}{took:.1f}s")

    def _stop_side(self, side: str) -> None:
        for w in list(self.workers):
            if w.group == f"console-stream-{side}" and not w.is_finished:
                w.cancel()

    def action_stop(self) -> None:
        for side in SIDES:
            self._stop_side(side)

    @on(Input.Submitted, "ParamPanel Input")
    def _param_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_send()

    def action_focus_prompt(self) -> None:
        self.prompt.focus()

    def action_toggle_params(self) -> None:
        hide = not self.has_class("-no-params")
        if hide and self.params.has_focus_within:
            self.prompt.focus()
        self.set_class(hide, "-no-params")

    # -- history -----------------------------------------------------------------------------
    @work(name="console-history", group="console-history", thread=True, exit_on_error=False)
    def _load_history(self) -> None:
        self.history.load()

    @work(
        name="console-history-save", group="console-history-save", thread=True, exit_on_error=False
    )
    def _save_history(
        self, prompt: str, model: str | None, compare: str | None, params: dict[str, Any]
    ) -> None:
        self.history.add(prompt, model=model, compare_with=compare, params=params)

    def restore(self, entry: dict[str, Any]) -> None:
        """Put a history entry back: prompt, model(s) and parameters."""
        self.prompt.text = entry.get("prompt", "")
        self.prompt.move_cursor(self.prompt.document.end)
        if entry.get("model"):
            self.set_model("a", entry["model"])
        if entry.get("compare_with"):
            self.set_model("b", entry["compare_with"])
            self.side_by_side = True
        params = entry.get("params")
        if isinstance(params, dict):
            self.params.set_values(params)

    def _current(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt.text,
            "model": self.model_of("a"),
            "compare_with": self.model_of("b") if self.side_by_side else None,
            "params": self.params.values(),
        }

    def action_history_step(self, delta: int) -> None:
        entries = self.history.entries
        if not entries:
            self.notify("No prompt history yet", timeout=2)
            return
        if self.history_pos is None:
            if delta > 0:
                return
            self._draft = self._current()
            pos = len(entries) - 1
        else:
            pos = self.history_pos + delta
        if pos >= len(entries):
            self.history_pos = None
            if self._draft is not None:
                self.restore(self._draft)
            return
        pos = max(0, pos)
        self.history_pos = pos
        self.restore(entries[pos])
        self.notify(f"History {pos + 1}/{len(entries)}", timeout=1.5)

    def action_history(self) -> None:
        if not self.history.entries:
            self.notify("No prompt history yet", timeout=2)
            return

        def picked(entry: dict[str, Any] | None) -> None:
            if entry:
                self.restore(entry)
                self.prompt.focus()

        self.app.push_screen(HistoryScreen(self.history.entries), picked)
