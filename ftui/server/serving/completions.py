"""The legacy completions API: `POST /v1/completions` and `POST /v1/engines/{model}/completions`.

The request is parsed by `completion_request`; here: model resolution (fine-tuned models of the
store, then base names through `basemodels`, never downloading), and the two ways
of answering: one JSON object, or server-sent events (one chunk per token per choice, then
`data: [DONE]`). Generation itself (`infer`) runs on a small pool of worker threads so the event
loop stays free; a client that goes away cancels its generation before the next token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import threading
from collections.abc import AsyncIterator, Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ftui.server import basemodels, hf
from ftui.server.http import params
from ftui.server.http.errors import APIError, bad_request, shorten
from ftui.server.jobs.store import Store, new_id, now
from ftui.server.serving import infer
from ftui.server.serving.completion_request import CompletionRequest, parse_request
from ftui.server.serving.model_cache import LoadedModel, ModelCache
from ftui.textsafe import first_surrogate

log = logging.getLogger("ftui.server.serving.completions")

MAX_MODEL_NAME = 4096  # characters: longer is neither a model name nor a usable path
DEFAULT_WORKERS = 4


def logprobs_json(tokens: list[infer.Token]) -> dict[str, list]:
    return {
        "tokens": [t.text for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [t.top for t in tokens],
        "text_offset": [t.offset for t in tokens],
    }


@dataclass
class Candidate:
    """One generated choice, collected for a non-streamed answer."""

    text: list[str] = field(default_factory=list)
    tokens: list[infer.Token] = field(default_factory=list)
    finish: infer.GenerationEvent | None = None

    def add(self, event: infer.GenerationEvent) -> None:
        if event.kind == "finish":
            self.finish = event
        else:
            self.text.append(event.text)
            self.tokens.extend(event.tokens)


# ---------------------------------------------------------------- one generation


@dataclass
class Generation:
    """A request's generation, run on a worker thread."""

    id: str
    entry: LoadedModel
    prompts: list[infer.Prompt]
    request: CompletionRequest
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)  # set once off the worker
    generated: int = 0  # tokens sampled by the choices that have finished
    released: int = 0  # pieces of text handed out so far (about one per token)
    cancelled: bool = False

    def run(self, emit: Callable[[int, infer.GenerationEvent], None]) -> None:
        sampling = self.request.sampling()

        def count(i: int, event: infer.GenerationEvent) -> None:
            if event.kind == "finish":
                self.generated += event.completion_tokens
            elif event.kind == "text":
                self.released += 1
            emit(i, event)

        try:
            with infer.inference():
                generator = infer.make_generator(self.entry.device, self.request.seed)
                for i, prompt in enumerate(self.prompts):
                    infer.generate(
                        self.entry,
                        prompt,
                        sampling,
                        self.request.best_of,
                        generator,
                        lambda event, i=i: count(i, event),
                        self.cancel,
                    )
        except infer.Cancelled:
            self.cancelled = True
            raise

    def usage(self) -> dict[str, int]:
        prompt_tokens = sum(len(p.ids) for p in self.prompts)
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": self.generated,
            "total_tokens": prompt_tokens + self.generated,
        }


class _Stop:
    """Queue items that end a stream."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class EventStream(StreamingResponse):
    """SSE that notices a client going away at once (not only at its next write) and then
    cancels the generation behind it."""

    def __init__(self, chunks: AsyncIterator[str], on_disconnect: Callable[[], None]) -> None:
        super().__init__(
            chunks,
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )
        self.on_disconnect = on_disconnect

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watcher = asyncio.create_task(_wait_disconnect(receive, self.on_disconnect))
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            async for chunk in self.body_iterator:
                data = chunk.encode() if isinstance(chunk, str) else chunk
                await send({"type": "http.response.body", "body": data, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # the client is gone
            self.on_disconnect()
        finally:
            watcher.cancel()
            await self.body_iterator.aclose()  # type: ignore[attr-defined]


async def _wait_disconnect(receive: Receive, on_disconnect: Callable[[], None]) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            on_disconnect()
            return


# ---------------------------------------------------------------- the service


class CompletionService:
    """Route handlers, the model cache and the generation threads."""

    def __init__(self, store: Store, device: str = "auto", workers: int | None = None) -> None:
        # Before anything in this process imports torch (a bundled-model conversion does too).
        hf.set_runtime_env()
        self.store = store
        self.models = ModelCache(device=device)
        env_workers = os.environ.get("FTUI_GENERATION_WORKERS", "")
        self.workers = workers or (int(env_workers) if env_workers.isdigit() else 0)
        self.workers = max(1, self.workers or DEFAULT_WORKERS)
        self.executor = ThreadPoolExecutor(self.workers, thread_name_prefix="ftui-generate")
        self.active: dict[str, Generation] = {}

    def shutdown(self) -> None:
        """Stop every running generation and the worker threads (for the server's lifespan
        end: otherwise a generation still running keeps the process alive until it is done)."""
        for generation in list(self.active.values()):
            generation.cancel.set()
        self.executor.shutdown(wait=True, cancel_futures=True)

    # --- routes ---------------------------------------------------------------------------
    async def create(self, request: Request) -> Response:
        body = params.parse_json_object(await request.body())
        return await self._complete(request, parse_request(body))

    async def create_for_engine(self, request: Request) -> Response:
        body = params.parse_json_object(await request.body())
        return await self._complete(request, parse_request(body, request.path_params["model"]))

    # --- models ---------------------------------------------------------------------------
    def forget_deleted(self) -> None:
        """Unload fine-tuned models that were deleted since they were loaded. Runs before each
        completion; the model-deletion route can call it too, to free the memory at once."""

        def deleted(key: Hashable) -> bool:
            if not (isinstance(key, tuple) and key[0] == "fine-tuned"):
                return False
            record = self.store.get_model(key[1])
            return record is None or record.path != key[2]

        self.models.discard(deleted)

    def _not_found(self, name: str, detail: str = "") -> APIError:
        message = f"The model `{shorten(name)}` does not exist" + (
            f": {shorten(detail, 1000)}" if detail else ""
        )
        return APIError(404, message, param="model", code="model_not_found")

    def _resolve(self, name: str) -> tuple[Hashable, Path]:
        if len(name) > MAX_MODEL_NAME or "\x00" in name or first_surrogate(name) is not None:
            raise self._not_found(name, "this is neither a model name nor a usable path.")
        record = self.store.get_model(name)
        if record is not None:
            return ("fine-tuned", record.id, record.path), Path(record.path)
        job = self.store.get_job(name)
        if job is not None:
            if job.fine_tuned_model and self.store.get_model(job.fine_tuned_model):
                detail = f"`{name}` is a fine-tuning job; its model is `{job.fine_tuned_model}`."
            elif not job.terminal:
                detail = (
                    f"`{name}` is a fine-tuning job that is {job.status}; its model can be used "
                    "once the job has succeeded (the job's fine_tuned_model names it)."
                )
                raise APIError(404, detail, param="model", code="model_not_ready")
            else:
                detail = f"`{name}` is a fine-tuning job that {job.status} without a model."
            raise self._not_found(name, detail)
        try:
            path = basemodels.resolve(name, self.store.data_dir, allow_download=False)
        except basemodels.BaseModelNotFound as exc:
            detail = exc.how_to_get
            if name.startswith("ft:") or ":ft-" in name:
                detail = (
                    "no fine-tuned model of this name exists here (it may have been deleted, "
                    "or its job has not finished)."
                )
            raise self._not_found(name, detail) from None
        except basemodels.BaseModelConfigError as exc:
            raise APIError(500, str(exc), type="server_error") from None
        except OSError as exc:  # a local path the system refuses (a name too long, say)
            raise self._not_found(name, f"{exc.strerror or exc}.") from None
        return ("base", str(path)), path

    def _load(self, name: str, key: Hashable, path: Path) -> LoadedModel:
        try:
            return self.models.get(key, path)
        except Exception as exc:
            if isinstance(key, tuple) and key[0] == "fine-tuned":
                record = self.store.get_model(name)
                if record is None or record.path != key[2]:
                    gone = "it was deleted while it was being loaded."
                    raise self._not_found(name, gone) from None
            log.exception("loading model %s from %s failed", name, path)
            raise APIError(
                500,
                f"Could not load the model `{shorten(name)}` from {path}: "
                f"{type(exc).__name__}: {exc}",
                type="server_error",
            ) from None

    def _prepare(self, entry: LoadedModel, req: CompletionRequest) -> list[infer.Prompt]:
        too_big = [t for t in req.logit_bias if t >= entry.vocab_size]
        if too_big:
            raise bad_request(
                f"'logit_bias' names token id {too_big[0]}, but this model's token ids are 0 to "
                f"{entry.vocab_size - 1}.",
                param="logit_bias",
            )
        try:
            # One prompt at a time, each refused as soon as it cannot fit beside max_tokens.
            prompts = [infer.prepare_prompt(entry, p, req.max_tokens) for p in req.prompts]
            prompt_logprobs = req.echo and req.logprobs is not None
            infer.check_budget(entry, prompts, req.max_tokens, req.best_of, prompt_logprobs)
        except infer.RequestError as exc:
            raise bad_request(exc.message, param=exc.param, code=exc.code) from None
        return prompts

    # --- answering -------------------------------------------------------------------------
    async def model(self, name: str) -> LoadedModel:
        """The loaded model a request names (404 when there is none; loaded once, cached)."""
        self.forget_deleted()
        key, path = await asyncio.to_thread(self._resolve, name)
        return await asyncio.to_thread(self._load, name, key, path)

    async def _complete(self, request: Request, req: CompletionRequest) -> Response:
        entry = await self.model(req.model)
        prompts = await asyncio.to_thread(self._prepare, entry, req)
        generation = Generation(new_id("cmpl-"), entry, prompts, req)
        if req.stream:
            return self._stream(generation)
        return await self._collect(request, generation)

    def _submit(self, generation: Generation, work: Callable[[], None]) -> Future:
        self.active[generation.id] = generation

        def run() -> None:
            try:
                work()
            finally:
                self.active.pop(generation.id, None)
                generation.done.set()

        return self.executor.submit(run)

    async def gather(
        self, request: Request, generation: Generation
    ) -> list[list[Candidate]] | None:
        """Run a generation to its end and collect its choices, per prompt; None when the client
        went away (its generation is then cancelled)."""
        candidates = [
            [Candidate() for _ in range(generation.request.best_of)] for _ in generation.prompts
        ]

        def emit(i: int, event: infer.GenerationEvent) -> None:
            candidates[i][event.choice].add(event)

        future = asyncio.wrap_future(self._submit(generation, lambda: generation.run(emit)))
        watcher = asyncio.create_task(_wait_disconnect(request.receive, generation.cancel.set))
        try:
            await asyncio.wait({future, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
        if not future.done():  # the client went away: nobody will read an answer
            generation.cancel.set()
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            return None
        try:
            future.result()
        except infer.Cancelled:
            return None
        except Exception as exc:
            log.exception("completion %s failed", generation.id)
            raise APIError(
                500, f"Generation failed: {type(exc).__name__}: {exc}", type="server_error"
            ) from None
        return candidates

    async def _collect(self, request: Request, generation: Generation) -> Response:
        req = generation.request
        candidates = await self.gather(request, generation)
        if candidates is None:
            return Response(status_code=204)
        choices = []
        for i, group in enumerate(candidates):
            order = list(range(len(group)))
            if req.best_of > req.n:
                order.sort(key=lambda c: -_score(group[c]))
            for j, c in enumerate(order[: req.n]):
                cand = group[c]
                logprobs = logprobs_json(cand.tokens) if req.logprobs is not None else None
                choices.append(
                    {
                        "text": "".join(cand.text),
                        "index": i * req.n + j,
                        "logprobs": logprobs,
                        "finish_reason": cand.finish.finish_reason if cand.finish else "length",
                    }
                )
        body = {
            "id": generation.id,
            "object": "text_completion",
            "created": now(),
            "model": req.model,
            "choices": choices,
            "usage": generation.usage(),
        }
        return JSONResponse(body)

    def _stream(self, generation: Generation) -> Response:
        req = generation.request
        created = now()
        want_lp = req.logprobs is not None

        def chunk(choices: list[dict[str, Any]], usage: Any = None) -> str:
            body = {
                "id": generation.id,
                "object": "text_completion",
                "created": created,
                "model": req.model,
                "choices": choices,
            }
            if req.include_usage:
                body["usage"] = usage
            return sse(body)

        def render(i: int, event: infer.GenerationEvent) -> list[str]:
            final = event.kind == "finish"
            choice = {
                "text": event.text,
                "index": i * req.n + event.choice,
                "logprobs": logprobs_json(event.tokens) if want_lp else None,
                "finish_reason": event.finish_reason if final else None,
            }
            return [chunk([choice])]

        def end() -> list[str]:
            return [chunk([], generation.usage())] if req.include_usage else []

        return self.event_stream(generation, render, end)

    def event_stream(
        self,
        generation: Generation,
        render: Callable[[int, infer.GenerationEvent], list[str]],
        end: Callable[[], list[str]],
        start: Callable[[], list[str]] = list,
    ) -> Response:
        """Server-sent events of a generation: ``start()``'s chunks, ``render``'s for each event
        (prompt index, event), ``end()``'s once it finished, then `data: [DONE]`. An error
        after the start is sent as an error event; a client that goes away stops it."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def emit(i: int, event: infer.GenerationEvent) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, (i, event))

        def work() -> None:
            stop = _Stop()
            try:
                generation.run(emit)
            except infer.Cancelled:
                pass
            except Exception as exc:
                log.exception("completion %s failed", generation.id)
                stop = _Stop(exc)
            loop.call_soon_threadsafe(queue.put_nowait, stop)

        async def chunks() -> AsyncIterator[str]:
            self._submit(generation, work)
            try:
                for piece in start():
                    yield piece
                while True:
                    item = await queue.get()
                    if isinstance(item, _Stop):
                        if generation.cancel.is_set():
                            return
                        if item.error is not None:
                            error = APIError(
                                500,
                                f"Generation failed: {type(item.error).__name__}: {item.error}",
                                type="server_error",
                            )
                            yield sse(error.body())
                            return
                        for piece in end():
                            yield piece
                        yield "data: [DONE]\n\n"
                        return
                    for piece in render(*item):
                        yield piece
            finally:
                generation.cancel.set()  # no-op once finished; stops the generation otherwise

        def on_disconnect() -> None:
            generation.cancel.set()
            loop.call_soon_threadsafe(queue.put_nowait, _Stop())

        return EventStream(chunks(), on_disconnect)


def sse(body: dict[str, Any]) -> str:
    return f"data: {json.dumps(body)}\n\n"


def _score(candidate: Candidate) -> float:
    return infer.mean_logprob(candidate.finish) if candidate.finish else -math.inf
