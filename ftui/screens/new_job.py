"""New job: every option of a fine-tuning job, its default shown, and the request it will send.

Files can be an uploaded file's id (``file-…``, completed from the file list) or a local path
(completed from the disk); local paths are uploaded when the job is created, with a progress
bar. The suffix is checked as it is typed. The preview pane shows the exact endpoint and JSON
body; ``ctrl+r`` (or the Create button) sends it.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.suggester import Suggester
from textual.widgets import (
    Button,
    Checkbox,
    Footer,
    Header,
    Input,
    Label,
    Static,
)

from ftui import dialects
from ftui.cache import read_off_thread
from ftui.client.jobs import JobChoices, JobPlan, plan_create
from ftui.widgets.base import FtuiScreen
from ftui.widgets.fields import read_number
from ftui.widgets.upload import UploadProgress

if TYPE_CHECKING:
    from ftui.client import Client

PREFERRED_MODELS = ("ada", "babbage-002", "davinci-002", "babbage", "curie", "davinci")
# The defaults the server resolves "auto" to, as ftui.dialects states them.
EPOCHS_HINT = f"auto (legacy default {dialects.LEGACY_DEFAULT_N_EPOCHS})"
BATCH_HINT = f"auto (≈{dialects.BATCH_SIZE_FRACTION:.1%} of examples)"
LR_HINT = (
    f"auto ({dialects.LR_MULTIPLIER_BANDS[0][1]:g}–{dialects.LR_MULTIPLIER_ABOVE:g} by batch size)"
)
PLW_HINT = f"{dialects.DEFAULT_PROMPT_LOSS_WEIGHT:g} (legacy API)"


def _bundled(name: str) -> str:
    from importlib import resources

    return str(resources.files("ftui") / "data" / name)


class FileSuggester(Suggester):
    """Completes uploaded file ids (``file-…``) and local paths (read in a thread)."""

    def __init__(self, file_ids: list[str]) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.file_ids = file_ids

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        for file_id in self.file_ids:
            if file_id.startswith(value) and file_id != value:
                return file_id
        if value.startswith("file-"):
            return None
        return await asyncio.to_thread(complete_path, value)


def complete_path(value: str) -> str | None:
    """The first directory entry that completes ``value`` (directories end in ``/``)."""
    expanded = os.path.expanduser(value)
    directory, prefix = os.path.split(expanded)
    try:
        names = sorted(os.listdir(directory or "."))
    except OSError:
        return None
    for name in names:
        if name.startswith(prefix) and name != prefix and not name.startswith("."):
            full = os.path.join(directory, name)
            done = value[: len(value) - len(prefix)] + name
            return done + ("/" if os.path.isdir(full) else "")
    return None


@dataclass
class JobRequest:
    """The request the form will send (the client's plan of it), and what is wrong with it."""

    choices: JobChoices
    plan: JobPlan
    problems: list[tuple[str, str]] = field(default_factory=list)  # (field id, message)
    uploads: dict[str, str] = field(default_factory=dict)  # choice field → local path

    @property
    def path(self) -> str:
        return self.plan.path

    @property
    def body(self) -> dict[str, Any]:
        return self.plan.body

    @property
    def ok(self) -> bool:
        return not self.problems


def _number(
    value: str, field_id: str, what: str, problems: list, key: str, integer: bool = True
) -> Any:
    """A typed number within the server's limits for ``key`` (None when left empty)."""
    try:
        x = read_number(value, integer=integer)
    except ValueError as exc:
        problems.append((field_id, f"{what} must be {exc}, not {value.strip()!r}"))
        return None
    bound = dialects.LIMITS[key]
    if x is not None and (x != x or not bound.holds(x)):
        problems.append((field_id, f"{what} must be {bound.describe()}"))
    return x


def suffix_check(suffix: str, dialect: dialects.Dialect) -> tuple[bool, str]:
    """(ok, message) for a suffix as typed: its length limit and how it will appear."""
    limit = dialects.suffix_max(dialect)
    if not suffix:
        return True, f"optional, ≤{limit} characters, goes into the model's name"
    if len(suffix) > limit:
        return False, f"✖ {len(suffix)}/{limit} characters: too long"
    shown = dialects.normalize_suffix(suffix, dialect)
    if not shown:
        return False, "✖ no letters or digits: the name would have an empty suffix"
    note = f"✔ {len(suffix)}/{limit}"
    if shown != suffix:
        note += f" · appears as {shown!r}"
    return True, note


def build_request(values: dict[str, Any], caps: dict[str, Any] | None) -> JobRequest:
    """Read the form's ``values`` into the client's :class:`JobChoices` and plan the request
    the client will send for them (:func:`ftui.client.plan_create`); collect what is wrong.

    ``caps`` are the client's capabilities; before they are known the form assumes a server
    with both dialects (and ``_create`` re-plans with the real ones before sending).
    """
    problems: list[tuple[str, str]] = []
    uploads: dict[str, str] = {}
    caps = caps or {"dialect": "current", "current": True, "legacy": True}

    def file_ref(key: str, field_id: str, required: bool) -> str | None:
        value = str(values.get(key) or "").strip()
        if not value:
            if required:
                problems.append((field_id, "a training file is required (file id or path)"))
            return None
        if value.startswith("file-") and not os.path.exists(value):
            return value
        path = Path(value).expanduser()
        if path.is_file():
            uploads[key] = str(path)
            return f"<id of uploaded {path.name}>"
        problems.append((field_id, f"{value}: not an uploaded file id nor an existing file"))
        return value

    def number(key: str, field_id: str, what: str, integer: bool = True) -> Any:
        return _number(str(values.get(key) or ""), field_id, what, problems, key, integer)

    training = file_ref("training_file", "nj-training", True)
    validation = file_ref("validation_file", "nj-validation", False)
    model = str(values.get("model") or "").strip()
    if not model:
        problems.append(("nj-model", "pick a base model"))
    hyperparameters = {
        "n_epochs": number("n_epochs", "nj-epochs", "epochs"),
        "batch_size": number("batch_size", "nj-batch", "batch size"),
        "learning_rate_multiplier": number(
            "learning_rate_multiplier", "nj-lr", "learning rate multiplier", integer=False
        ),
    }
    plw = number("prompt_loss_weight", "nj-plw", "prompt loss weight", integer=False)
    seed = number("seed", "nj-seed", "seed")
    classify = bool(values.get("compute_classification_metrics"))
    n_classes = positive = betas = None
    if classify:
        n_classes = number("classification_n_classes", "nj-n-classes", "number of classes")
        positive = str(values.get("classification_positive_class") or "") or None
        raw_betas = str(values.get("classification_betas") or "").strip()
        if raw_betas:
            try:
                betas = [float(b) for b in raw_betas.replace(" ", "").split(",") if b]
            except ValueError:
                problems.append(("nj-betas", "betas are numbers separated by commas"))
        if validation is None:
            problems.append(
                ("nj-validation", "classification metrics are computed on a validation file")
            )
        if (n_classes or 2) == 2 and not positive:
            problems.append(("nj-positive", "binary classification needs the positive class"))
    choices = JobChoices(
        training_file=training or "",
        model=model,
        validation_file=validation,
        **hyperparameters,
        prompt_loss_weight=plw,
        compute_classification_metrics=True if classify else None,
        classification_n_classes=n_classes,
        classification_positive_class=positive,
        classification_betas=betas,
        suffix=str(values.get("suffix") or "") or None,
        seed=seed,
    )
    plan = plan_create(choices, caps)
    if plan.unsupported:
        named = ", ".join(plan.unsupported)
        problems.append(("nj-plw", f"{named}: only the legacy API has these, and it is absent"))
    ok, message = suffix_check(choices.suffix or "", plan.dialect)
    if not ok:
        problems.append(("nj-suffix", f"suffix: {message.lstrip('✖ ')}"))
    return JobRequest(choices, plan, problems, uploads)


class NewJobScreen(FtuiScreen):
    """The new fine-tuning job form."""

    BINDINGS = [
        Binding("ctrl+r", "create", "Create job", id="newjob.create", priority=True),
        Binding("escape", "close", "Close", id="newjob.close"),
    ]

    WORKER_WHAT = {"create": "Creating the job", "options": "Loading models and files"}

    def __init__(self, training_file: str | None = None) -> None:
        super().__init__()
        self.initial_training = training_file
        self.title = "New fine-tuning job"
        self.caps: dict[str, Any] | None = None
        self.file_ids: list[str] = []
        self.models: list[str] = []
        self.creating = False

    def compose(self) -> ComposeResult:
        def field(label: str, widget, pick: str | None = None):
            with Horizontal(classes="nj-field"):
                yield Label(label, classes="nj-label")
                yield widget
                if pick:
                    yield Button("Pick…", id=pick, classes="nj-pick", compact=True)

        def text(fid: str, placeholder: str, kind: str = "text", **kw) -> Input:
            return Input(id=fid, placeholder=placeholder, type=kind, compact=True, **kw)

        yield Header()
        with Horizontal(id="nj-body"):
            with VerticalScroll(id="nj-form"):
                yield from field(
                    "Training file",
                    text("nj-training", "file-… id or local path (→ completes)"),
                    "nj-pick-training",
                )
                yield from field(
                    "Validation file",
                    text("nj-validation", "none (needed for classification)"),
                    "nj-pick-validation",
                )
                yield from field(
                    "Base model",
                    text("nj-model", "a model id: ada, babbage-002, an HF id… (→ completes)"),
                    "nj-pick-model",
                )
                yield from field("Suffix", text("nj-suffix", "none", max_length=80))
                yield Static("", id="nj-suffix-check")
                yield from field("Epochs", text("nj-epochs", EPOCHS_HINT, "integer"))
                yield from field("Batch size", text("nj-batch", BATCH_HINT, "integer"))
                yield from field("LR multiplier", text("nj-lr", LR_HINT, "number"))
                yield from field("Prompt loss wt", text("nj-plw", PLW_HINT, "number"))
                yield from field("Seed", text("nj-seed", "random", "integer"))
                yield Checkbox(
                    "Classification metrics (legacy API)", id="nj-classification", compact=True
                )
                with Vertical(id="nj-class-options", classes="-hidden"):
                    yield from field("Classes", text("nj-n-classes", "2", "integer"))
                    yield from field(
                        "Positive class", text("nj-positive", "e.g. ' positive' (binary)")
                    )
                    yield from field("F-betas", text("nj-betas", "e.g. 0.5,2 (F1 always)"))
                yield UploadProgress(id="nj-progress")
                with Horizontal(id="nj-buttons"):
                    yield Button(
                        "Create job (ctrl+r)", id="nj-create", variant="primary", compact=True
                    )
                    yield Button("Cancel (esc)", id="nj-cancel", compact=True)
            yield Static("", id="nj-preview")
        yield Footer()

    def on_mount(self) -> None:
        for fid in ("nj-training", "nj-validation"):
            self.query_one(f"#{fid}", Input).suggester = FileSuggester(self.file_ids)
        if self.initial_training:
            self.query_one("#nj-training", Input).value = self.initial_training
            if Path(self.initial_training).name == "sample_sentiment.jsonl":
                self._prefill_sample()
        self.query_one("#nj-training", Input).focus()
        self._load_options()
        self.update_preview()

    def _prefill_sample(self) -> None:
        """The bundled sample: its validation half and the classification options."""
        self.query_one("#nj-validation", Input).value = _bundled("sample_sentiment_valid.jsonl")
        self.query_one("#nj-suffix", Input).value = "sample-sentiment"
        self.query_one("#nj-epochs", Input).value = "2"
        self.query_one("#nj-classification", Checkbox).value = True
        self.query_one("#nj-n-classes", Input).value = "2"
        self.query_one("#nj-positive", Input).value = " positive"

    def _set_models(self, ids: list[str]) -> None:
        """Known models: completed as you type, offered by Pick…; a default if none is set."""
        from textual.suggester import SuggestFromList

        box = self.query_one("#nj-model", Input)
        self.models = sorted(set(ids), key=lambda m: (":" in m, m))
        box.suggester = SuggestFromList(self.models, case_sensitive=True)
        if not box.value:
            choice = next((m for m in PREFERRED_MODELS if m in self.models), None)
            if choice is None and self.models:
                choice = self.models[0]
            if choice is not None:
                box.value = choice

    @work(name="options", group="options", exit_on_error=False)
    async def _load_options(self) -> None:
        """Models, files and the server's dialects: the cache's at once, then the server's."""
        cache = self.ftui.cache
        models = await read_off_thread(cache.list_models, default=[])
        files = await read_off_thread(cache.list_files, default=[])
        self.file_ids[:] = [f.id for f in files]
        self.caps = self.caps or await read_off_thread(cache.get_meta, "capabilities")
        self._set_models([m.id for m in models])
        self.update_preview()
        client = await self.ftui.api()
        self.caps = await client.capabilities()
        models = await client.models.list()
        self._set_models([m.id for m in models])
        files = await client.files.list()
        self.file_ids[:] = [f.id for f in files if f.purpose in ("fine-tune", "")]
        self.ftui.report_ok()
        self.update_preview()

    # -- form values and the preview -------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        def text(fid: str) -> str:
            return self.query_one(f"#{fid}", Input).value

        return {
            "training_file": text("nj-training"),
            "validation_file": text("nj-validation"),
            "model": text("nj-model"),
            "suffix": text("nj-suffix"),
            "n_epochs": text("nj-epochs"),
            "batch_size": text("nj-batch"),
            "learning_rate_multiplier": text("nj-lr"),
            "prompt_loss_weight": text("nj-plw"),
            "seed": text("nj-seed"),
            "compute_classification_metrics": self.query_one("#nj-classification", Checkbox).value,
            "classification_n_classes": text("nj-n-classes"),
            "classification_positive_class": text("nj-positive"),
            "classification_betas": text("nj-betas"),
        }

    def request(self) -> JobRequest:
        return build_request(self.values(), self.caps)

    def update_preview(self) -> None:
        req = self.request()
        text = Text()
        text.append("Request preview\n", style="bold")
        text.append(f"POST /v1{req.path}\n", style="bold")
        text.append(json.dumps(req.body, indent=2, ensure_ascii=False))
        if req.uploads:
            text.append("\n\nUploaded first: ", style="dim")
            text.append(", ".join(Path(p).name for p in req.uploads.values()))
        if req.problems:
            text.append("\n\nTo fix before sending:\n", style="bold")
            for _fid, message in req.problems:
                text.append(f"✖ {message}\n")
        else:
            text.append("\n\n✔ ready: ctrl+r creates the job", style="bold")
        self.query_one("#nj-preview", Static).update(text)
        ok, message = suffix_check(self.query_one("#nj-suffix", Input).value, req.plan.dialect)
        check = self.query_one("#nj-suffix-check", Static)
        check.update(Text(message, style="" if ok else "bold"))
        check.set_class(not ok, "-error")

    @on(Input.Changed)
    def _changed(self) -> None:
        self.update_preview()

    @on(Checkbox.Changed, "#nj-classification")
    def _classification(self, event: Checkbox.Changed) -> None:
        self.query_one("#nj-class-options").set_class(not event.value, "-hidden")
        self.update_preview()

    @on(Input.Submitted)
    def _next_field(self) -> None:
        self.focus_next()

    @on(Button.Pressed, "#nj-create")
    def _create_pressed(self) -> None:
        self.action_create()

    @on(Button.Pressed, "#nj-cancel")
    def _cancel_pressed(self) -> None:
        self.action_close()

    @on(Button.Pressed, ".nj-pick")
    def _pick(self, event: Button.Pressed) -> None:
        target = str(event.button.id).replace("nj-pick-", "nj-")
        self._pick_value(target)

    @work(name="pick", group="pick", exit_on_error=False)
    async def _pick_value(self, target: str) -> None:
        from ftui.screens.confirm import PickScreen

        if target == "nj-model":
            title = "Pick a base model (or a fine-tuned one to continue training)"
            options = [(m, m) for m in self.models]
            empty = "No models known yet (offline?); type a model id instead"
        else:
            title = "Pick an uploaded file"
            files = await read_off_thread(self.ftui.cache.list_files, default=[])
            options = [
                (f.id, f"{f.id}  {f.filename}  {f.bytes or 0:,} bytes")
                for f in files
                if f.purpose in ("fine-tune", "")
            ]
            empty = "No uploaded files known; type a local path instead"
        if not options:
            self.notify(empty)
            return
        chosen = await self.app.push_screen_wait(PickScreen(title, options))
        if chosen:
            self.query_one(f"#{target}", Input).value = chosen

    def action_close(self) -> None:
        if not self.creating:
            self.dismiss(None)

    # -- creating --------------------------------------------------------------------------------
    def action_create(self) -> None:
        req = self.request()
        if not req.ok:
            fid, message = req.problems[0]
            self.notify(message, title="Cannot create the job yet", severity="error", markup=False)
            self.query_one(f"#{fid}").focus()
            return
        if not self.creating:
            self._create(req)

    @work(name="create", group="create", exclusive=True, exit_on_error=False)
    async def _create(self, req: JobRequest) -> None:
        self.creating = True
        try:
            client = await self.ftui.api()
            caps = await client.capabilities()
            if plan_create(req.choices, caps) != req.plan:
                # The preview assumed another kind of server: show the real plan first.
                self.caps = caps
                self.update_preview()
                self.notify(
                    "The server's API differs from what the preview assumed; check the request "
                    "and create again.",
                    title="Request changed",
                    severity="warning",
                )
                return
            uploaded = {k: await self._upload(client, path) for k, path in req.uploads.items()}
            # Exactly the previewed plan, with the uploaded files' ids in their placeholders.
            plan = await client.jobs.plan(replace(req.choices, **uploaded))
            job = await client.jobs.send(plan)
        finally:
            self.creating = False
        self.ftui.report_ok()
        self.ftui.job_updated(job)
        self.notify(f"Created {job.id}", title="New job", markup=False)
        self.dismiss(job.id)
        self.ftui.open_job(job.id)

    async def _upload(self, client: Client, path: str) -> str:
        (uploaded,) = await self.query_one(UploadProgress).upload(client, [path])
        self.file_ids.append(uploaded.id)
        return uploaded.id
