"""ASGI routes under /v1 for both dialects of the fine-tuning API, over one job store.

The route table (`create_app`) and each route's handler stay together so the API reads in one
place; request checks live in `params`/`jobrequests`/`uploadform`, wire shapes in `views`."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ftui.records import RecordError, validate_jsonl
from ftui.server import basemodels
from ftui.server.diskio import storage_problem
from ftui.server.http import jobrequests, openapi, params, uploadform, views
from ftui.server.http.errors import APIError, bad_request, not_found, shorten
from ftui.server.http.guard import EdgeConfig, GuardMiddleware
from ftui.server.http.views import JSONResponse
from ftui.server.jobs import naming
from ftui.server.jobs.runner import Runner
from ftui.server.jobs.signals import JobSignals
from ftui.server.jobs.store import FileRecord, JobRecord, Store
from ftui.server.serving.chat import ChatService
from ftui.server.serving.completions import CompletionService

log = logging.getLogger("ftui.server")

FILE_PURPOSES = {"fine-tune", "fine-tune-results", "assistants", "batch", "user_data", "vision"}
KEEPALIVE_SECONDS = 15.0


@dataclass
class ServerConfig:
    data_dir: Path
    edge: EdgeConfig = field(default_factory=EdgeConfig)  # Host, Origin, key, body limits
    organization_id: str = "org-personal"
    max_concurrent_jobs: int = 1
    device: str = "auto"
    threads: int | None = None


class Server:
    """The state every route shares: the store, the runner and the wake-ups."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.store = Store(config.data_dir)
        self.signals = JobSignals()
        self.runner = Runner(
            self.store,
            self.signals,
            max_concurrent=config.max_concurrent_jobs,
            device=config.device,
            threads=config.threads,
        )
        self.completions = CompletionService(self.store, device=config.device)
        self.chat = ChatService(self.completions)

    # --- helpers ------------------------------------------------------------------------
    def file_or_404(self, file_id: str) -> FileRecord:
        if not file_id:
            raise APIError(
                404,
                "No file id in the URL: use /v1/files/{file_id}, or GET /v1/files to list them.",
                param="id",
            )
        record = self.store.get_file(file_id) or self.store.get_file(file_id.replace("+", " "))
        if record is None:
            raise not_found("File", file_id)
        return record

    def job_or_404(self, job_id: str) -> JobRecord:
        job = self.store.get_job(job_id)
        if job is None:
            raise not_found("FineTune" if job_id.startswith("ft-") else "FineTuningJob", job_id)
        return job

    def organization(self, request: Request) -> str:
        organization = request.headers.get("openai-organization")
        if not organization:
            return self.config.organization_id
        problem = naming.organization_problem(organization)
        if problem is not None:
            raise bad_request(problem, param="OpenAI-Organization", code="invalid_organization")
        return organization

    # --- files --------------------------------------------------------------------------
    async def upload_file(self, request: Request) -> Response:
        uploadform.require_multipart(request)
        try:
            form = await uploadform.read_form(request)
        except HTTPException as exc:  # malformed multipart
            raise bad_request(f"Could not read the multipart upload: {exc.detail}") from None
        except Exception as exc:  # the multipart parser's own error types vary by version
            raise bad_request(f"Could not read the multipart upload: {exc}") from None
        try:
            purpose = form.get("purpose")
            upload = form.get("file")
            if not isinstance(purpose, str) or not purpose:
                raise bad_request("Missing required parameter: 'purpose'.", param="purpose")
            if purpose not in FILE_PURPOSES:
                raise bad_request(
                    f"'{shorten(purpose)}' is not a valid purpose; expected one of "
                    f"{', '.join(sorted(FILE_PURPOSES))}.",
                    param="purpose",
                )
            if not isinstance(upload, UploadFile):
                raise bad_request("Missing required parameter: 'file'.", param="file")
            filename = upload.filename or "file"
            uploadform.check_filename(filename)
            summary = None
            if purpose == "fine-tune":
                summary = await asyncio.to_thread(self._validate_upload, upload, filename)
            await upload.seek(0)
            try:
                record = await asyncio.to_thread(
                    self.store.add_file_from,
                    upload.file,
                    filename=filename,
                    purpose=purpose,
                    examples=summary.examples if summary else None,
                    format=summary.format if summary else None,
                )
            except (OSError, sqlite3.Error) as exc:  # nothing is stored: no temp file, no row
                raise _storage_error(exc) from exc
        finally:
            await form.close()
        return JSONResponse(views.file_json(record))

    @staticmethod
    def _validate_upload(upload: UploadFile, filename: str):
        upload.file.seek(0)
        try:
            return validate_jsonl(upload.file)
        except RecordError as exc:
            raise bad_request(
                f"Invalid file format for fine-tune: {filename}, line {exc.line} {exc.message}. "
                "Every line must be a JSON object with string 'prompt' and 'completion' "
                "fields, or a 'messages' list.",
                param="file",
                code="invalid_file_format",
            ) from None

    async def list_files(self, request: Request) -> Response:
        records = self.store.list_files(request.query_params.get("purpose"))
        order = request.query_params.get("order", "desc")
        if order not in ("asc", "desc"):
            raise bad_request(
                f"'order' must be 'asc' or 'desc'; got {shorten(repr(order))}.", param="order"
            )
        if order == "desc":
            records.reverse()
        page, has_more = _page(records, request, default_limit=10_000, key=lambda r: r.id)
        data = [views.file_json(r) for r in page]
        return _cursor_list(data, has_more)

    async def get_file(self, request: Request) -> Response:
        return JSONResponse(views.file_json(self.file_or_404(request.path_params["file_id"])))

    async def delete_file(self, request: Request) -> Response:
        record = self.file_or_404(request.path_params["file_id"])
        users = self.store.jobs_needing_file(record.id)
        if users:
            job = users[0]
            role = "training" if job.training_file == record.id else "validation"
            # Refused rather than letting the job fail later: a queued job would find its data
            # gone, and a running one could not resume from a checkpoint after a pause.
            raise bad_request(
                f"File {record.id} is the {role} file of job {job.id}, which is {job.status}; "
                "the job needs it until it finishes. Cancel the job or wait for it to finish, "
                "then delete the file.",
                param="file_id",
                code="file_in_use",
            )
        self.store.delete_file(record.id)
        return JSONResponse({"id": record.id, "object": "file", "deleted": True})

    async def file_content(self, request: Request) -> Response:
        record = self.file_or_404(request.path_params["file_id"])
        media = "text/csv" if record.filename.endswith(".csv") else "application/octet-stream"
        return StreamingResponse(
            self.store.iter_blob(record),
            media_type=media,
            headers={
                "content-length": str(record.bytes),
                "content-disposition": _attachment(record.filename),
            },
        )

    # --- jobs: legacy ---------------------------------------------------------------------
    async def create_legacy(self, request: Request) -> Response:
        body = params.parse_json_object(await request.body())
        job = jobrequests.legacy_job(
            self.store,
            body,
            self.organization(request),
            basemodels.default_model(self.store.data_dir),
        )
        self.store.add_job(job)
        self.runner.emit(job, f"Created fine-tune: {job.id}")
        self.runner.emit(job, "Fine-tune costs $0.00")
        self.runner.submit(job.id)
        return JSONResponse(views.legacy_job(self.store, self.store.get_job(job.id)))

    async def list_legacy(self, request: Request) -> Response:
        data = [views.legacy_job(self.store, j, with_events=False) for j in self.store.list_jobs()]
        return JSONResponse({"object": "list", "data": data})

    async def get_legacy(self, request: Request) -> Response:
        job = self.job_or_404(request.path_params["job_id"])
        return JSONResponse(views.legacy_job(self.store, job))

    async def cancel_legacy(self, request: Request) -> Response:
        job = await self._cancel(request.path_params["job_id"])
        return JSONResponse(views.legacy_job(self.store, job))

    async def delete_legacy(self, request: Request) -> Response:
        job = self.job_or_404(request.path_params["job_id"])
        if not job.terminal:
            raise bad_request(
                f"Job {job.id} is still {job.status}; cancel it before deleting it.", param="id"
            )
        self.store.delete_job(job.id)
        return JSONResponse({"id": job.id, "object": "fine-tune", "deleted": True})

    async def legacy_events(self, request: Request) -> Response:
        job = self.job_or_404(request.path_params["job_id"])
        stream = params.query_flag(request.query_params.get("stream"), "stream")
        if not stream:
            data = [views.legacy_event(e) for e in self.store.events(job.id)]
            return JSONResponse({"object": "list", "data": data})
        return StreamingResponse(
            self._event_stream(job.id),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    async def _event_stream(self, job_id: str) -> AsyncIterator[str]:
        """History, then live events, then `[DONE]` once the job is terminal; then the body ends."""
        last_seq = 0
        while True:
            waiter = self.signals.waiter(job_id)
            job = self.store.get_job(job_id)
            # Read the status before the events: the runner stores a job's final events
            # before its terminal status, so a terminal job's events are all visible here.
            terminal = job is None or job.terminal
            for event in self.store.events(job_id, last_seq):
                last_seq = event.seq
                yield f"data: {views.dumps(views.legacy_event(event))}\n\n"
            if terminal:
                yield "data: [DONE]\n\n"
                return
            try:
                await asyncio.wait_for(waiter.wait(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keepalive\n\n"

    async def _cancel(self, job_id: str) -> JobRecord:
        job = self.job_or_404(job_id)
        if job.terminal:
            raise bad_request(
                f"Job {job.id} has already {job.status}; it cannot be cancelled.", param="id"
            )
        return await self.runner.cancel(job)

    # --- jobs: current ----------------------------------------------------------------------
    async def create_current(self, request: Request) -> Response:
        body = params.parse_json_object(await request.body())
        job = jobrequests.current_job(self.store, body, self.organization(request))
        self.store.add_job(job)
        self.runner.emit(job, f"Created fine-tuning job: {job.id}", data={})
        files = f"Validating training file: {job.training_file}"
        if job.validation_file:
            files += f" and validation file: {job.validation_file}"
        self.runner.emit(job, files, data={})
        response = views.current_job(job)
        self.runner.submit(job.id)
        return JSONResponse(response)

    async def list_current(self, request: Request) -> Response:
        jobs = list(reversed(self.store.list_jobs()))  # newest first
        metadata = {
            k[len("metadata[") : -1]: v
            for k, v in request.query_params.items()
            if k.startswith("metadata[") and k.endswith("]")
        }
        if metadata:
            jobs = [
                j for j in jobs if all((j.metadata or {}).get(k) == v for k, v in metadata.items())
            ]
        page, has_more = _page(jobs, request, default_limit=20, key=lambda j: j.id)
        return JSONResponse(
            {"object": "list", "data": [views.current_job(j) for j in page], "has_more": has_more}
        )

    async def get_current(self, request: Request) -> Response:
        return JSONResponse(views.current_job(self.job_or_404(request.path_params["job_id"])))

    async def cancel_current(self, request: Request) -> Response:
        return JSONResponse(views.current_job(await self._cancel(request.path_params["job_id"])))

    async def pause_current(self, request: Request) -> Response:
        job = self.job_or_404(request.path_params["job_id"])
        if job.status not in ("validating_files", "queued", "running"):
            raise bad_request(
                f"Job {job.id} is {job.status}; only a queued or running job can be paused.",
                param="id",
            )
        return JSONResponse(views.current_job(await self.runner.pause(job)))

    async def resume_current(self, request: Request) -> Response:
        job = self.job_or_404(request.path_params["job_id"])
        if job.status != "paused":
            raise bad_request(
                f"Job {job.id} is {job.status}; only a paused job can be resumed.", param="id"
            )
        return JSONResponse(views.current_job(self.runner.resume(job)))

    async def current_checkpoints(self, request: Request) -> Response:
        job = self.job_or_404(request.path_params["job_id"])
        checkpoints = list(reversed(self.store.checkpoints(job.id)))  # newest first
        page, has_more = _page(checkpoints, request, default_limit=10, key=lambda c: c.id)
        data = [views.checkpoint_json(c) for c in page]
        return _cursor_list(data, has_more)

    async def current_events(self, request: Request) -> Response:
        job = self.job_or_404(request.path_params["job_id"])
        events = list(reversed(self.store.events(job.id)))  # newest first
        page, has_more = _page(events, request, default_limit=20, key=lambda e: e.id)
        return JSONResponse(
            {"object": "list", "data": [views.current_event(e) for e in page], "has_more": has_more}
        )

    # --- models -------------------------------------------------------------------------
    def _base_models(self) -> dict[str, dict[str, Any]]:
        try:
            return {m["id"]: m for m in basemodels.ready_models(self.store.data_dir)}
        except basemodels.BaseModelConfigError as exc:
            raise APIError(500, str(exc), type="server_error") from None

    def _is_base_name(self, model_id: str) -> bool:
        table = basemodels.load_table(self.store.data_dir)
        return model_id in table.aliases or model_id == basemodels.BUNDLED_ID

    async def list_models(self, request: Request) -> Response:
        data = [
            views.model_json(m["id"], 0, "ftui", m["id"], None)
            for m in self._base_models().values()
        ]
        data += [views.fine_tuned_model_json(m) for m in self.store.list_models()]
        return JSONResponse({"object": "list", "data": data})

    def _model_not_found(self, model_id: str) -> APIError:
        if not model_id:
            message = "No model id in the URL: use /v1/models/{model}, or GET /v1/models."
        else:
            message = f"The model `{shorten(model_id)}` does not exist"
        return APIError(404, message, param="model", code="model_not_found")

    async def get_model(self, request: Request) -> Response:
        model_id = request.path_params["model"]
        record = self.store.get_model(model_id)
        if record is not None:
            return JSONResponse(views.fine_tuned_model_json(record))
        base = self._base_models().get(model_id)
        if base is None:
            raise self._model_not_found(model_id)
        return JSONResponse(views.model_json(model_id, 0, "ftui", model_id, None))

    async def delete_model(self, request: Request) -> Response:
        model_id = request.path_params["model"]
        if self.store.delete_model(model_id):
            self.completions.forget_deleted()  # free its memory now, not at the next request
            return JSONResponse({"id": model_id, "object": "model", "deleted": True})
        if self._is_base_name(model_id):
            raise APIError(
                403,
                f"`{model_id}` is a base model; only fine-tuned models can be deleted.",
                type="invalid_request_error",
                param="model",
            )
        raise self._model_not_found(model_id)


def _storage_error(exc: Exception, outcome: str = "the file was not stored") -> APIError:
    """A write the disk refused: 507 when it is full (the client may retry later), else 500;
    either way the message names the cause."""
    problem = storage_problem(exc)
    if problem is None:
        log.exception("could not write to the data dir")
        return APIError(500, f"The server could not write: {exc}; {outcome}.", type="server_error")
    status = 507 if problem.kind == "full" else 500
    message = f"{problem.message}; {outcome}."
    return APIError(status, message, type="server_error", code=f"storage_{problem.kind}")


def _page(items: list, request: Request, *, default_limit: int, key) -> tuple[list, bool]:
    """Cursor pagination: `after` names the last item of the previous page."""
    limit = params.query_limit(request.query_params.get("limit"), default_limit, 10_000)
    after = request.query_params.get("after")
    if after:
        ids = [key(item) for item in items]
        if after not in ids:
            raise bad_request(f"No such object for 'after': {shorten(after)}", param="after")
        items = items[ids.index(after) + 1 :]
    return items[:limit], len(items) > limit


def _cursor_list(data: list[dict[str, Any]], has_more: bool) -> JSONResponse:
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return JSONResponse(
        {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": has_more}
    )


def _error_response(exc: APIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


def _attachment(filename: str) -> str:
    """Content-Disposition for a download: always saved, never shown inline; the plain name
    keeps to safe ASCII and the UTF-8 form carries the real one."""
    plain = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in filename
    )
    encoded = quote(filename, safe="")
    return f"attachment; filename=\"{plain or 'file'}\"; filename*=UTF-8''{encoded}"


def create_app(config: ServerConfig) -> Starlette:
    server = Server(config)

    def route(path: str, endpoint, methods: list[str]) -> Route:
        async def handler(request: Request) -> Response:
            try:
                return await endpoint(request)
            except APIError as exc:
                return _error_response(exc)
            except ClientDisconnect:
                # The client left, or the guard already answered (body too large or too slow).
                return Response(status_code=400)
            except (OSError, sqlite3.Error) as exc:
                # Any route's write (a job created, a file deleted) on a full or read-only disk
                # says so, like uploads do; the store's transaction has rolled back.
                if storage_problem(exc) is None:
                    raise
                return _error_response(_storage_error(exc, "nothing was changed"))

        return Route(path, handler, methods=methods)

    s = server
    routes = [
        route("/v1/files", s.list_files, ["GET"]),
        route("/v1/files", s.upload_file, ["POST"]),
        route("/v1/files/{file_id:path}/content", s.file_content, ["GET"]),
        route("/v1/files/{file_id:path}", s.get_file, ["GET"]),
        route("/v1/files/{file_id:path}", s.delete_file, ["DELETE"]),
        route("/v1/fine-tunes", s.list_legacy, ["GET"]),
        route("/v1/fine-tunes", s.create_legacy, ["POST"]),
        route("/v1/fine-tunes/{job_id}/cancel", s.cancel_legacy, ["POST"]),
        route("/v1/fine-tunes/{job_id}/events", s.legacy_events, ["GET"]),
        route("/v1/fine-tunes/{job_id}", s.get_legacy, ["GET"]),
        route("/v1/fine-tunes/{job_id}", s.delete_legacy, ["DELETE"]),
        route("/v1/fine_tuning/jobs", s.list_current, ["GET"]),
        route("/v1/fine_tuning/jobs", s.create_current, ["POST"]),
        route("/v1/fine_tuning/jobs/{job_id}/cancel", s.cancel_current, ["POST"]),
        route("/v1/fine_tuning/jobs/{job_id}/events", s.current_events, ["GET"]),
        route("/v1/fine_tuning/jobs/{job_id}/pause", s.pause_current, ["POST"]),
        route("/v1/fine_tuning/jobs/{job_id}/resume", s.resume_current, ["POST"]),
        route("/v1/fine_tuning/jobs/{job_id}/checkpoints", s.current_checkpoints, ["GET"]),
        route("/v1/fine_tuning/jobs/{job_id}", s.get_current, ["GET"]),
        route("/v1/models", s.list_models, ["GET"]),
        route("/openapi.json", openapi.describe, ["GET"]),
        route("/v1/openapi.json", openapi.describe, ["GET"]),
        route("/v1/models/{model:path}", s.get_model, ["GET"]),
        route("/v1/models/{model:path}", s.delete_model, ["DELETE"]),
        route("/v1/completions", s.completions.create, ["POST"]),
        route("/v1/chat/completions", s.chat.create, ["POST"]),
        route("/v1/engines/{model:path}/completions", s.completions.create_for_engine, ["POST"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        path = shorten(request.url.path)
        if exc.status_code == 404:
            message = f"Unknown request URL: {request.method} {path}."
            return _error_response(APIError(404, message, code="unknown_url"))
        if exc.status_code == 405:
            message = f"{request.method} is not allowed on {path}."
            return _error_response(APIError(405, message, code="method_not_allowed"))
        return _error_response(APIError(exc.status_code, str(exc.detail)))

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        error = APIError(
            500, "The server had an error while processing your request.", type="server_error"
        )
        return _error_response(error)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        await server.runner.start()
        try:
            yield
        finally:
            await server.runner.stop()
            server.completions.shutdown()
            server.store.close()

    app = Starlette(
        routes=routes,
        middleware=[Middleware(GuardMiddleware, config=config.edge)],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.state.server = server
    return app
