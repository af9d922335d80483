"""Turn a create-job request of either dialect into a checked JobRecord."""

from __future__ import annotations

import secrets
from typing import Any

from ftui import dialects
from ftui.server.http import params
from ftui.server.http.errors import bad_request, shorten
from ftui.server.jobs.store import JobRecord, Store, new_id, now

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
    *dialects.EXTENSION_OPTIONS,  # ftui extensions: lora, max_grad_norm, micro_batch_size
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
HYPERPARAMETER_FIELDS = set(dialects.HYPERPARAMETERS)
METHOD_FIELDS = {"type", "supervised"}
# Options checked as whole numbers; the others in dialects.LIMITS are any number.
WHOLE_NUMBERS = {"n_epochs", "batch_size", "micro_batch_size", "classification_n_classes", "seed"}


def _bounded(body: dict[str, Any], key: str) -> Any:
    """The option checked against its bound in dialects.LIMITS (None when absent)."""
    bound = dialects.LIMITS[key]
    if key in WHOLE_NUMBERS:
        return params.integer(body, key, int(bound.lo), int(bound.hi))
    return params.number(body, key, bound.lo, bound.hi, lo_inclusive=not bound.low_open)


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
    if dialects.is_fine_tuned(model) and store.get_model(model) is None:
        raise bad_request(
            f"Invalid base model: {shorten(model)} is not a fine-tuned model on this server.",
            param="model",
        )


def _hyperparameters(body: dict[str, Any], *, allow_auto: bool) -> dict[str, Any]:
    out = {}
    for key in dialects.HYPERPARAMETERS:
        out[key] = params.auto_or(body, key, _bounded) if allow_auto else _bounded(body, key)
    return out


def _extensions(body: dict[str, Any], *, allow_auto: bool) -> dict[str, Any]:
    """ftui's own options: ``lora`` (true/false; absent = LoRA only for large base models),
    ``max_grad_norm`` (0 turns clipping off) and ``micro_batch_size``."""

    def check(source: dict[str, Any], key: str) -> Any:
        return params.boolean(source, key) if key == "lora" else _bounded(source, key)

    return {
        key: params.auto_or(body, key, check) if allow_auto else check(body, key)
        for key in dialects.EXTENSION_OPTIONS
    }


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
    params.reject_unknown(raw, HYPERPARAMETER_FIELDS | set(dialects.EXTENSION_OPTIONS))
    return {**_hyperparameters(raw, allow_auto=True), **_extensions(raw, allow_auto=True)}


def _integrations(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    integrations = body.get("integrations")
    if integrations is None:
        return None
    if not isinstance(integrations, list) or len(integrations) > dialects.INTEGRATIONS_MAX:
        raise bad_request(
            f"'integrations' must be a list of at most {dialects.INTEGRATIONS_MAX} items.",
            param="integrations",
        )
    for index, item in enumerate(integrations):
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            where = f"integrations[{index}]"
            raise bad_request(
                f"'{where}' must be an object with a string 'type' (such as 'wandb').",
                param=where,
            )
    return integrations


def _seed(body: dict[str, Any]) -> int:
    seed = _bounded(body, "seed")
    return seed if seed is not None else secrets.randbelow(dialects.MAX_SEED)


def _classification(body: dict[str, Any]) -> dict[str, Any]:
    out = {
        "compute_classification_metrics": params.boolean(body, "compute_classification_metrics")
        or False,
        "classification_n_classes": _bounded(body, "classification_n_classes"),
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
    suffix = params.string(body, "suffix", max_length=dialects.LEGACY_SUFFIX_MAX)
    nested = _nested_hyperparameters(body) if "hyperparameters" in body else {}
    requested = _hyperparameters(body, allow_auto=False)
    requested |= _extensions(body, allow_auto=False)
    # Top-level values win over the nested object's.
    requested = {k: v if v is not None else nested.get(k) for k, v in requested.items()}
    requested["prompt_loss_weight"] = _bounded(body, "prompt_loss_weight")
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
    suffix = params.string(body, "suffix", max_length=dialects.CURRENT_SUFFIX_MAX)
    requested = _nested_hyperparameters(body)
    metadata = body.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, dict)
        or len(metadata) > dialects.METADATA_MAX_PAIRS
        or any(not isinstance(k, str) or len(k) > dialects.METADATA_KEY_MAX for k in metadata)
        or any(
            not isinstance(v, str) or len(v) > dialects.METADATA_VALUE_MAX
            for v in metadata.values()
        )
    ):
        raise bad_request(
            f"'metadata' must be an object of at most {dialects.METADATA_MAX_PAIRS} string "
            f"pairs (keys up to {dialects.METADATA_KEY_MAX} characters, values up to "
            f"{dialects.METADATA_VALUE_MAX}).",
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
