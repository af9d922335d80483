"""``client.jobs``: fine-tuning jobs in either dialect, and the one plan of a job's creation.

:func:`plan_create` is the only place in ftui that turns the options a person chose into the
endpoint and JSON body of a create request. ``jobs.create`` sends exactly its plan, and the
new-job form previews exactly its plan, so what is shown is what is sent.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from ftui import dialects
from ftui.client.errors import NotFoundError, UnsupportedError
from ftui.client.transport import drop_none, seg
from ftui.types import Checkpoint, Job, JobEvent, ResultRow

if TYPE_CHECKING:
    from ftui.client._client import Client


@dataclass(frozen=True)
class JobChoices:
    """What a person chose for a new job; ``None`` leaves an option to the server's default."""

    training_file: str
    model: str
    validation_file: str | None = None
    n_epochs: int | None = None
    batch_size: int | None = None
    learning_rate_multiplier: float | None = None
    prompt_loss_weight: float | None = None
    compute_classification_metrics: bool | None = None
    classification_n_classes: int | None = None
    classification_positive_class: str | None = None
    classification_betas: Sequence[float] | None = None
    suffix: str | None = None
    seed: int | None = None
    extra: Mapping[str, Any] | None = None


class JobOptions(TypedDict, total=False):
    """The keyword options of ``jobs.create`` (the fields of :class:`JobChoices` but the two
    required ones)."""

    validation_file: str | None
    n_epochs: int | None
    batch_size: int | None
    learning_rate_multiplier: float | None
    prompt_loss_weight: float | None
    compute_classification_metrics: bool | None
    classification_n_classes: int | None
    classification_positive_class: str | None
    classification_betas: Sequence[float] | None
    suffix: str | None
    seed: int | None
    extra: Mapping[str, Any] | None


@dataclass(frozen=True)
class JobPlan:
    """The request that creates a job: ``POST /v1{path}`` with ``body``.

    ``unsupported`` names legacy-only options that the server cannot take (it has no legacy
    endpoint); a plan with any is refused by ``jobs.send`` and left out of ``body``.
    """

    path: str
    body: dict[str, Any]
    unsupported: tuple[str, ...] = ()

    @property
    def dialect(self) -> dialects.Dialect:
        return "legacy" if self.path == dialects.LEGACY_PATH else "current"


def plan_create(choices: JobChoices, caps: Mapping[str, Any]) -> JobPlan:
    """The endpoint and body that create a job with ``choices`` on a server with ``caps``.

    Legacy-only options (prompt loss weight, classification metrics) go to the legacy endpoint
    even on a current-dialect profile when the server has it; everything else goes to the
    profile's dialect. ``caps`` is :meth:`Client.capabilities`. ``extra`` is merged in as is.
    """
    legacy_opts = {k: getattr(choices, k) for k in dialects.LEGACY_ONLY_OPTIONS}
    # "off" and "no betas" are the server's defaults: leave them out rather than send them
    legacy_opts["compute_classification_metrics"] = choices.compute_classification_metrics or None
    betas = choices.classification_betas
    legacy_opts["classification_betas"] = list(betas) if betas else None
    wanted = tuple(k for k, v in legacy_opts.items() if v is not None)
    legacy = caps["dialect"] == "legacy" or bool(wanted and caps.get("legacy"))
    hyper = {k: getattr(choices, k) for k in dialects.HYPERPARAMETERS}
    files = {"training_file": choices.training_file, "validation_file": choices.validation_file}
    if legacy:
        body = {**files, "model": choices.model, **hyper, **legacy_opts}
        path = dialects.LEGACY_PATH
    else:
        body = {**files, "model": choices.model, "hyperparameters": drop_none(hyper) or None}
        path = dialects.CURRENT_PATH
    body = drop_none({**body, "suffix": choices.suffix, "seed": choices.seed})
    body.update(choices.extra or {})
    return JobPlan(path, body, () if legacy else wanted)


def parse_results_csv(content: bytes | str) -> list[ResultRow]:
    """Parse a results file into rows by column name (base64-wrapped CSV is unwrapped)."""
    text = content.decode("utf-8-sig") if isinstance(content, bytes) else content
    first = text.lstrip()[:200].splitlines()[0] if text.strip() else ""
    if first and "," not in first:
        with contextlib.suppress(binascii.Error, ValueError, UnicodeDecodeError):
            decoded = base64.b64decode("".join(text.split()), validate=True).decode("utf-8-sig")
            if "," in decoded.splitlines()[0]:
                text = decoded
    return [ResultRow.from_csv(r) for r in csv.DictReader(io.StringIO(text))]


class Jobs:
    def __init__(self, client: Client):
        self._c = client

    async def _cache_job(self, job: Job) -> Job:
        if self._c.cache is not None:
            await self._c._cache_do(self._c.cache.put_job, job)
        return job

    async def _base(self) -> str:
        current = await self._c.dialect() == "current"
        return dialects.CURRENT_PATH if current else dialects.LEGACY_PATH

    async def list(self) -> list[Job]:
        """All jobs (every page), newest first, in either dialect."""
        c, t = self._c, self._c._transport
        if await c.dialect() == "current":
            jobs = [
                Job.from_api(d)
                async for data in t.pages(dialects.CURRENT_PATH, {"limit": 100})
                for d in data
            ]
        else:
            page = await t.json("GET", dialects.LEGACY_PATH)
            jobs = [Job.from_api(d) for d in reversed(page.get("data") or [])]
        jobs.sort(key=lambda j: j.created_at or 0, reverse=True)  # stable: keeps server order
        if c.cache is not None:
            await c._cache_do(c.cache.put_jobs, jobs, complete=True)
        return jobs

    async def plan(self, choices: JobChoices) -> JobPlan:
        """:func:`plan_create` with this client's capabilities (probed once)."""
        return plan_create(choices, await self._c.capabilities())

    async def send(self, plan: JobPlan) -> Job:
        """Create the job ``plan`` describes; :class:`UnsupportedError` if it cannot be sent."""
        if plan.unsupported:
            raise UnsupportedError(
                f"{', '.join(plan.unsupported)}: only the legacy /v1/fine-tunes API has these, "
                f"and {self._c.base_url} does not offer it"
            )
        data = await self._c._transport.json(
            "POST", plan.path, json_body=plan.body, idempotent=False
        )
        return await self._cache_job(Job.from_api(data))

    async def create(self, training_file: str, model: str, **options: Unpack[JobOptions]) -> Job:
        """Create a job (:meth:`plan`, then :meth:`send`). Unset options are left to the
        server's defaults; legacy-only options on a server without the legacy endpoint raise
        :class:`UnsupportedError`."""
        return await self.send(await self.plan(JobChoices(training_file, model, **options)))

    async def retrieve(self, job_id: str) -> Job:
        data = await self._c._transport.json("GET", f"{await self._base()}/{seg(job_id)}")
        return await self._cache_job(Job.from_api(data))

    async def cancel(self, job_id: str) -> Job:
        path = f"{await self._base()}/{seg(job_id)}/cancel"
        data = await self._c._transport.json("POST", path, idempotent=True)
        return await self._cache_job(Job.from_api(data))

    async def _current_only(self, job_id: str, action: str) -> str:
        caps = await self._c.capabilities()
        if not caps["current"]:
            raise UnsupportedError(
                f"{action}: only the current /v1/fine_tuning/jobs API has it, and "
                f"{self._c.base_url} is used with the legacy dialect"
            )
        return f"{dialects.CURRENT_PATH}/{seg(job_id)}/{action}"

    async def pause(self, job_id: str) -> Job:
        path = await self._current_only(job_id, "pause")
        data = await self._c._transport.json("POST", path, idempotent=True)
        return await self._cache_job(Job.from_api(data))

    async def resume(self, job_id: str) -> Job:
        path = await self._current_only(job_id, "resume")
        data = await self._c._transport.json("POST", path, idempotent=True)
        return await self._cache_job(Job.from_api(data))

    async def events(self, job_id: str) -> list[JobEvent]:
        """All events of the job, oldest first (every page)."""
        c, t = self._c, self._c._transport
        if await c.dialect() == "current":
            path = f"{dialects.CURRENT_PATH}/{seg(job_id)}/events"
            newest_first = [d async for data in t.pages(path, {"limit": 100}) for d in data]
            return [JobEvent.from_api(d) for d in reversed(newest_first)]
        page = await t.json("GET", f"{dialects.LEGACY_PATH}/{seg(job_id)}/events")
        return [JobEvent.from_api(d) for d in page.get("data") or []]

    async def checkpoints(self, job_id: str) -> list[Checkpoint]:
        """All checkpoints of the job (every page), in the server's order."""
        path = await self._current_only(job_id, "checkpoints")
        return [
            Checkpoint.from_api(d)
            async for data in self._c._transport.pages(path, {"limit": 100})
            for d in data
        ]

    async def results_file(self, job_id: str) -> str:
        """The id of the job's results file; :class:`NotFoundError` if it has none yet."""
        job = await self.retrieve(job_id)
        if not job.result_files:
            raise NotFoundError(
                f"no results file for {job_id} (status: {job.status})", status_code=None
            )
        return job.result_files[0]

    async def results(self, job_id: str) -> list[ResultRow]:
        """The results CSV of a finished job, parsed into rows by column name."""
        content = await self._c.files.content(await self.results_file(job_id))
        rows = parse_results_csv(content)
        if self._c.cache is not None:
            await self._c._cache_do(self._c.cache.put_results, job_id, rows)
        return rows
