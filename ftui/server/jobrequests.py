"""Turn a create-job request of either dialect into a checked JobRecord."""

from __future__ import annotations

import secrets
from typing import Any

from ftui.server import params
from ftui.server.errors import bad_request, shorten
from ftui.server.store import JobRecord, Store, new_id, now

LEGACY_FIELDS = {
    "training_file",
    "validation_file",
    "model",
    "n_epochs",
    "batch_size",
    "learning_rate_multiplier",
    "prompt_loss_weight",
    "compute_classification_metrics",
    "classification_n_classes",
    "classification_positive_class",
    "classification_betas",
    "suffix",
    "seed",
    "hyperparameters",  # the v1 SDK's stub of this endpoint sent it
    "lora",  # ftui extension: true/false; absent = LoRA only for large base models
}
CURRENT_FIELDS = {
    "model",
    "training_file",
    "validation_file",
    "hyperparameters",
    "suffix",
    "seed",
    "integrations",
    "method",
    "metadata",
}
HYPERPARAMETER_FIELDS = {"n_epochs", "batch_size", "learning_rate_multiplier"}
METHOD_FIELDS = {"type", "supervised"}
MAX_SEED = 2147483647


def _check_file(store: Store, file_id: str | None, param: str) -> None:
    if file_id is None:
        return
    record = store.get_file(file_id)
    if record is None:
        raise bad_request(
            f"No such File object: {shorten(file_id)} (given as {param}).", param=param
        )
    if record.purpose != "fine-tune":
        raise bad_request(
            f"File {file_id} has purpose '{record.purpose}'; {param} needs a file uploaded "
            "with purpose 'fine-tune'.",
            param=param,
        )


def _check_model(store: Store, model: str) -> None:
    looks_fine_tuned = model.startswith("ft:") or ":ft-" in model
    if looks_fine_tuned and store.get_model(model) is None:
        raise bad_request(
            f"Invalid base model: {shorten(model)} is not a fine-tuned model on this server.",
            param="model",
        )


def _hyperparameters(body: dict[str, Any], *, allow_auto: bool) -> dict[str, Any]:
    def check(source: dict[str, Any], key: str) -> Any:
        if key == "n_epochs":
            return params.integer(source, key, 1, 50)
        if key == "batch_size":
            return params.integer(source, key, 1, 256)
        return params.number(source, key, 0.0, 100.0, lo_inclusive=False)

    out = {}
    for key in HYPERPARAMETER_FIELDS:
        out[key] = params.auto_or(body, key, check) if allow_auto else check(body, key)
    return out


def _object(value: Any, where: str) -> dict[str, Any]:
    """A nested request object, with its nulls dropped like the top level's."""
    if not isinstance(value, dict):
        raise bad_request(
            f"'{where}' must be an object; got {params.type_name(value)}.", param=where
        )
    return {k: v for k, v in value.items() if v is not None}


def _nested_hyperparameters(body: dict[str, Any]) -> dict[str, Any]:
    raw = _object(body.get("hyperparameters", {}), "hyperparameters")
    method = body.get("method")
    if method is not None:
        method = _object(method, "method")
        params.reject_unknown(method, METHOD_FIELDS, where="method")
        kind = method.get("type", "supervised")
        if not isinstance(kind, str):
            raise bad_request(
                f"Invalid type for 'method.type': expected a string, but got "
                f"{params.type_name(kind)}.",
                param="method.type",
            )
        if kind != "supervised":
            raise bad_request(
                f"method type {shorten(repr(kind))} is not supported by this server; use "
                "'supervised'.",
                param="method",
            )
        supervised = _object(method.get("supervised", {}), "method.supervised")
        params.reject_unknown(supervised, {"hyperparameters"}, where="method.supervised")
        nested = _object(supervised.get("hyperparameters", {}), "method.supervised.hyperparameters")
        raw = {**raw, **nested}
    params.reject_unknown(raw, HYPERPARAMETER_FIELDS | {"lora"})
    out = _hyperparameters(raw, allow_auto=True)
    out["lora"] = params.auto_or(raw, "lora", params.boolean)  # ftui extension
    return out


def _integrations(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    integrations = body.get("integrations")
    if integrations is None:
        return None
    if not isinstance(integrations, list) or len(integrations) > 5:
        raise bad_request("'integrations' must be a list of at most 5 items.", param="integrations")
    for index, item in enumerate(integrations):
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            where = f"integrations[{index}]"
            raise bad_request(
                f"'{where}' must be an object with a string 'type' (such as 'wandb').",
                param=where,
            )
    return integrations


def _seed(body: dict[str, Any]) -> int:
    seed = params.integer(body, "seed", 0, MAX_SEED)
    return seed if seed is not None else secrets.randbelow(MAX_SEED)


def _classification(body: dict[str, Any]) -> dict[str, Any]:
    out = {
        "compute_classification_metrics": params.boolean(body, "compute_classification_metrics")
        or False,
        "classification_n_classes": params.integer(body, "classification_n_classes", 2, 10_000),
        "classification_positive_class": params.string(body, "classification_positive_class"),
        "classification_betas": params.number_list(body, "classification_betas"),
    }
    if out["compute_classification_metrics"]:
        if body.get("validation_file") is None:
            raise bad_request(
                "compute_classification_metrics needs a validation_file to compute them on.",
                param="validation_file",
            )
        if out["classification_n_classes"] is None and out["classification_positive_class"] is None:
            raise bad_request(
                "compute_classification_metrics needs classification_n_classes (multiclass) "
                "or classification_positive_class (binary).",
                param="compute_classification_metrics",
            )
    return out


def legacy_job(store: Store, body: dict[str, Any], organization_id: str, default_model: str):
    params.reject_unknown(body, LEGACY_FIELDS)
    training_file = params.string(body, "training_file", required=True)
    validation_file = params.string(body, "validation_file")
    model = params.string(body, "model") or default_model
    suffix = params.string(body, "suffix", max_length=40)
    nested = _nested_hyperparameters(body) if "hyperparameters" in body else {}
    requested = _hyperparameters(body, allow_auto=False)
    requested = {k: requested[k] if requested[k] is not None else nested.get(k) for k in requested}
    requested["lora"] = params.boolean(body, "lora")
    if requested["lora"] is None:
        requested["lora"] = nested.get("lora")
    requested["prompt_loss_weight"] = params.number(body, "prompt_loss_weight", 0.0, 1.0)
    requested.update(_classification(body))
    return _record(
        store,
        body,
        dialect="legacy",
        status="queued",
        model=model,
        training_file=training_file,
        validation_file=validation_file,
        params=requested,
        suffix=suffix,
        organization_id=organization_id,
    )


def current_job(store: Store, body: dict[str, Any], organization_id: str):
    params.reject_unknown(body, CURRENT_FIELDS)
    model = params.string(body, "model", required=True)
    training_file = params.string(body, "training_file", required=True)
    validation_file = params.string(body, "validation_file")
    suffix = params.string(body, "suffix", max_length=64)
    requested = _nested_hyperparameters(body)
    metadata = body.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, dict)
        or len(metadata) > 16
        or any(not isinstance(k, str) or len(k) > 64 for k in metadata)
        or any(not isinstance(v, str) or len(v) > 512 for v in metadata.values())
    ):
        raise bad_request(
            "'metadata' must be an object of at most 16 string pairs (keys up to 64 "
            "characters, values up to 512).",
            param="metadata",
        )
    integrations = _integrations(body)
    return _record(
        store,
        body,
        dialect="current",
        status="validating_files",
        model=model,
        training_file=training_file,
        validation_file=validation_file,
        params=requested,
        suffix=suffix,
        organization_id=organization_id,
        metadata=metadata,
        integrations=integrations,
    )


def _record(store: Store, body: dict[str, Any], *, dialect: str, **fields: Any) -> JobRecord:
    """The checks both dialects share, then the new job."""
    _check_file(store, fields["training_file"], "training_file")
    _check_file(store, fields["validation_file"], "validation_file")
    _check_model(store, fields["model"])
    created = now()
    return JobRecord(
        id=new_id("ft-" if dialect == "legacy" else "ftjob-"),
        dialect=dialect,
        created_at=created,
        updated_at=created,
        seed=_seed(body),
        **fields,
    )
