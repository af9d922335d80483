"""Wire shapes: how stored records look in each dialect of the API."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from starlette.responses import JSONResponse as _StarletteJSONResponse

from ftui import dialects
from ftui.server.jobs.store import (
    CheckpointRecord,
    EventRecord,
    FileRecord,
    JobRecord,
    ModelRecord,
    Store,
)

log = logging.getLogger("ftui.server")

LEGACY_STATUS = {"validating_files": "pending", "queued": "pending"}
# What a legacy job shows before training resolves the rest (the others stay null until then).
LEGACY_DEFAULTS = {
    "n_epochs": dialects.LEGACY_DEFAULT_N_EPOCHS,
    "prompt_loss_weight": dialects.DEFAULT_PROMPT_LOSS_WEIGHT,
}
# In the order the original service listed them.
SHOWN_HYPERPARAMETERS = tuple(sorted(dialects.HYPERPARAMETERS))
CLASSIFICATION_KEYS = (
    "compute_classification_metrics",
    "classification_n_classes",
    "classification_positive_class",
    "classification_betas",
)


def file_json(record: FileRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "file",
        "bytes": record.bytes,
        "created_at": record.created_at,
        "filename": record.filename,
        "purpose": record.purpose,
        "status": record.status,
        "status_details": record.status_details,
    }


def _file_or_stub(store: Store, file_id: str) -> dict[str, Any]:
    record = store.get_file(file_id)
    if record:
        return file_json(record)
    # The file was deleted after the job was created; the job still names it.
    return {"id": file_id, "object": "file", "status": "deleted"}


def legacy_hyperparams(job: JobRecord) -> dict[str, Any]:
    if job.hyperparams:
        out = {k: job.hyperparams.get(k) for k in (*SHOWN_HYPERPARAMETERS, "prompt_loss_weight")}
    else:
        out = {
            k: job.params[k] if job.params.get(k) is not None else LEGACY_DEFAULTS.get(k)
            for k in (*SHOWN_HYPERPARAMETERS, "prompt_loss_weight")
        }
    if job.params.get("compute_classification_metrics"):
        out.update({k: job.params.get(k) for k in CLASSIFICATION_KEYS})
    return out


def legacy_event(event: EventRecord) -> dict[str, Any]:
    return {
        "object": "fine-tune-event",
        "created_at": event.created_at,
        "level": event.level,
        "message": event.message,
    }


def legacy_job(store: Store, job: JobRecord, with_events: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": job.id,
        "object": "fine-tune",
        "model": job.model,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
    }
    if with_events:
        out["events"] = [legacy_event(e) for e in store.events(job.id)]
    out.update(
        {
            "fine_tuned_model": job.fine_tuned_model,
            "hyperparams": legacy_hyperparams(job),
            "organization_id": job.organization_id,
            "result_files": [_file_or_stub(store, f) for f in job.result_files],
            "status": LEGACY_STATUS.get(job.status, job.status),
            "validation_files": [_file_or_stub(store, job.validation_file)]
            if job.validation_file
            else [],
            "training_files": [_file_or_stub(store, job.training_file)],
        }
    )
    return out


def current_hyperparameters(job: JobRecord) -> dict[str, Any]:
    if job.hyperparams:
        return {k: job.hyperparams.get(k) for k in SHOWN_HYPERPARAMETERS}
    return {
        k: job.params[k] if job.params.get(k) is not None else "auto" for k in SHOWN_HYPERPARAMETERS
    }


def current_event(event: EventRecord) -> dict[str, Any]:
    return {
        "object": "fine_tuning.job.event",
        "id": event.id,
        "created_at": event.created_at,
        "level": event.level,
        "message": event.message,
        "type": event.type,
        "data": event.data if event.data is not None else {},
    }


def current_job(job: JobRecord) -> dict[str, Any]:
    hyperparameters = current_hyperparameters(job)
    return {
        "id": job.id,
        "object": "fine_tuning.job",
        "created_at": job.created_at,
        "error": job.error,
        "fine_tuned_model": job.fine_tuned_model,
        "finished_at": job.finished_at,
        "hyperparameters": hyperparameters,
        "model": job.model,
        "organization_id": job.organization_id,
        "result_files": list(job.result_files),
        "status": job.status,
        "trained_tokens": job.trained_tokens,
        "training_file": job.training_file,
        "validation_file": job.validation_file,
        "seed": job.seed,
        "estimated_finish": job.estimated_finish,
        "integrations": job.integrations,
        "metadata": job.metadata,
        "method": {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
        "user_provided_suffix": job.suffix,
    }


def model_json(
    model_id: str, created: int, owned_by: str, root: str, parent: str | None
) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "created": created,
        "owned_by": owned_by,
        "root": root,
        "parent": parent,
    }


def fine_tuned_model_json(record: ModelRecord) -> dict[str, Any]:
    return model_json(record.id, record.created, record.owned_by, record.root, record.root)


def checkpoint_json(record: CheckpointRecord) -> dict[str, Any]:
    return {
        "object": "fine_tuning.job.checkpoint",
        "id": record.id,
        "created_at": record.created_at,
        "fine_tuned_model_checkpoint": record.model_id,
        "fine_tuning_job_id": record.job_id,
        "step_number": record.step,
        "metrics": record.metrics,
    }


def _finite_copy(content: Any, where: list[str]) -> Any:
    """`content` with every non-finite float replaced by None; their paths go to `where`."""
    if isinstance(content, float):
        if math.isfinite(content):
            return content
        where.append("")
        return None
    root: list[Any] = [content]
    stack: list[tuple[Any, Any, str]] = [(root, 0, "")]
    while stack:
        parent, key, path = stack.pop()
        value = parent[key]
        if isinstance(value, dict):
            parent[key] = value = dict(value)
            stack.extend((value, k, f"{path}.{k}" if path else str(k)) for k in value)
        elif isinstance(value, list | tuple):
            parent[key] = value = list(value)
            stack.extend((value, i, f"{path}[{i}]") for i in range(len(value)))
        elif isinstance(value, float) and not math.isfinite(value):
            parent[key] = None
            where.append(path)
    return root[0]


def dumps(content: Any) -> str:
    """Strict JSON for the wire. A non-finite number that reached the store before requests
    were checked for them (or a diverged metric) is sent as null and logged, so one bad value
    can never make a list of jobs, events or checkpoints unreadable."""
    try:
        return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:
        where: list[str] = []
        clean = _finite_copy(content, where)
        log.warning("non-finite numbers sent as null at %s", ", ".join(where[:10]) or "(top)")
        return json.dumps(clean, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class JSONResponse(_StarletteJSONResponse):
    """Every JSON answer of the API goes through `dumps`."""

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")
