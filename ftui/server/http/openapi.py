"""An OpenAPI 3.0 description of `ftui serve`, served at `/openapi.json` (and `/v1/openapi.json`).

Hand-written and compact: the routes, their parameters, and the request bodies of the routes
that create something, as this server checks them. Tools that generate requests from it
(schemathesis, client generators) get the real bounds; the test suite fuzzes the server with it.
Responses are described by their shape only where a client needs it (the error shape).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ftui.server.http.views import JSONResponse


def _int(lo: int, hi: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": lo, "maximum": hi}


def _num(lo: float, hi: float, *, exclusive_lo: bool = False) -> dict[str, Any]:
    return {"type": "number", "minimum": lo, "maximum": hi, "exclusiveMinimum": exclusive_lo}


def _auto(schema: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [{"type": "string", "enum": ["auto"]}, schema]}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


PAGE = [_query("after", {"type": "string"}), _query("limit", _int(1, 10_000))]
STRING = {"type": "string"}
ERROR = {"$ref": "#/components/schemas/Error"}

HYPERPARAMETERS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "n_epochs": _auto(_int(1, 50)),
        "batch_size": _auto(_int(1, 256)),
        "learning_rate_multiplier": _auto(_num(0, 100, exclusive_lo=True)),
        "lora": _auto({"type": "boolean"}),
    },
}

LEGACY_CREATE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["training_file"],
    "properties": {
        "training_file": STRING,
        "validation_file": _nullable(STRING),
        "model": _nullable(STRING),
        "n_epochs": _nullable(_int(1, 50)),
        "batch_size": _nullable(_int(1, 256)),
        "learning_rate_multiplier": _nullable(_num(0, 100, exclusive_lo=True)),
        "prompt_loss_weight": _nullable(_num(0, 1)),
        "compute_classification_metrics": _nullable({"type": "boolean"}),
        "classification_n_classes": _nullable(_int(2, 10_000)),
        "classification_positive_class": _nullable(STRING),
        "classification_betas": _nullable(
            {"type": "array", "minItems": 1, "items": _num(0, 1e300, exclusive_lo=True)}
        ),
        "suffix": _nullable({"type": "string", "minLength": 1, "maxLength": 40}),
        "seed": _nullable(_int(0, 2147483647)),
        "hyperparameters": _nullable(HYPERPARAMETERS),
        "lora": _nullable({"type": "boolean"}),
    },
}

CURRENT_CREATE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["model", "training_file"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "training_file": STRING,
        "validation_file": _nullable(STRING),
        "hyperparameters": _nullable(HYPERPARAMETERS),
        "suffix": _nullable({"type": "string", "minLength": 1, "maxLength": 64}),
        "seed": _nullable(_int(0, 2147483647)),
        "metadata": _nullable(
            {
                "type": "object",
                "maxProperties": 16,
                "additionalProperties": {"type": "string", "maxLength": 512},
            }
        ),
        "integrations": _nullable(
            {
                "type": "array",
                "maxItems": 5,
                "items": {"type": "object", "required": ["type"], "properties": {"type": STRING}},
            }
        ),
        "method": _nullable(
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "type": {"type": "string", "enum": ["supervised"]},
                    "supervised": _nullable(
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"hyperparameters": _nullable(HYPERPARAMETERS)},
                        }
                    ),
                },
            }
        ),
    },
}

TOKENS = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}}
PROMPT = {
    "oneOf": [
        STRING,
        {"type": "array", "minItems": 1, "maxItems": 2048, "items": STRING},
        TOKENS,
        {"type": "array", "minItems": 1, "maxItems": 2048, "items": TOKENS},
    ]
}
COMPLETION_FIELDS: dict[str, Any] = {
    "prompt": PROMPT,
    "max_tokens": _nullable(_int(0, 2147483648)),
    "temperature": _nullable(_num(0, 2)),
    "top_p": _nullable(_num(0, 1)),
    "n": _nullable(_int(1, 128)),
    "best_of": _nullable(_int(1, 20)),
    "stream": _nullable({"type": "boolean"}),
    "stream_options": _nullable(
        {"type": "object", "properties": {"include_usage": {"type": "boolean"}}}
    ),
    "logprobs": _nullable(_int(0, 5)),
    "echo": _nullable({"type": "boolean"}),
    "stop": _nullable(
        {"oneOf": [STRING, {"type": "array", "maxItems": 4, "items": {"type": "string"}}]}
    ),
    "presence_penalty": _nullable(_num(-2, 2)),
    "frequency_penalty": _nullable(_num(-2, 2)),
    "logit_bias": _nullable({"type": "object", "additionalProperties": _num(-100, 100)}),
    "seed": _nullable({"type": "integer"}),
    "user": _nullable(STRING),
}
COMPLETION = {
    "type": "object",
    "required": ["model"],
    "properties": {"model": {"type": "string", "example": "tiny"}, **COMPLETION_FIELDS},
}
ENGINE_COMPLETION = {"type": "object", "properties": COMPLETION_FIELDS}
TEXT_PARTS = {
    "oneOf": [
        STRING,
        {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type", "text"],
                "properties": {"type": {"type": "string", "enum": ["text"]}, "text": STRING},
            },
        },
    ]
}
TOOL_CALL = {
    "type": "object",
    "required": ["id", "type", "function"],
    "properties": {
        "id": STRING,
        "type": {"type": "string", "enum": ["function"]},
        "function": {
            "type": "object",
            "required": ["name", "arguments"],
            "properties": {"name": STRING, "arguments": STRING},
        },
    },
}
MESSAGE = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": _nullable(TEXT_PARTS),
        "name": _nullable(STRING),
        "tool_calls": _nullable({"type": "array", "minItems": 1, "items": TOOL_CALL}),
        "tool_call_id": _nullable(STRING),
    },
}
TOOL = {
    "type": "object",
    "required": ["type", "function"],
    "properties": {
        "type": {"type": "string", "enum": ["function"]},
        "function": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"},
                "description": STRING,
                "parameters": {"type": "object"},
                "strict": {"type": "boolean"},
            },
        },
    },
}
CHAT_COMPLETION = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string", "example": "tiny"},
        "messages": {"type": "array", "minItems": 1, "items": MESSAGE},
        "max_completion_tokens": _nullable(_int(1, 2147483648)),
        "max_tokens": _nullable(_int(1, 2147483648)),
        **{k: COMPLETION_FIELDS[k] for k in ("temperature", "top_p", "n", "stop", "seed")},
        **{k: COMPLETION_FIELDS[k] for k in ("presence_penalty", "frequency_penalty")},
        "logit_bias": COMPLETION_FIELDS["logit_bias"],
        "logprobs": _nullable({"type": "boolean"}),
        "top_logprobs": _nullable(_int(0, 20)),
        "stream": _nullable({"type": "boolean"}),
        "stream_options": _nullable(
            {"type": "object", "properties": {"include_usage": {"type": "boolean"}}}
        ),
        "tools": _nullable({"type": "array", "maxItems": 128, "items": TOOL}),
        "tool_choice": _nullable(
            {
                "oneOf": [
                    {"type": "string", "enum": ["none", "auto", "required"]},
                    {
                        "type": "object",
                        "required": ["type", "function"],
                        "properties": {
                            "type": {"type": "string", "enum": ["function"]},
                            "function": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": STRING},
                            },
                        },
                    },
                ]
            }
        ),
        "parallel_tool_calls": {"type": "boolean"},
        "response_format": _nullable(
            {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": {"type": "string", "enum": ["text", "json_object", "json_schema"]},
                    "json_schema": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"},
                            "schema": {"type": "object"},
                            "strict": {"type": "boolean"},
                        },
                    },
                },
            }
        ),
        "metadata": _nullable({"type": "object", "additionalProperties": STRING}),
        "user": _nullable(STRING),
    },
}
UPLOAD = {
    "type": "object",
    "required": ["purpose", "file"],
    "properties": {
        "purpose": {
            "type": "string",
            "enum": [
                *("fine-tune", "fine-tune-results", "assistants"),
                *("batch", "user_data", "vision"),
            ],
        },
        "file": {"type": "string", "format": "binary"},
    },
}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _op(summary: str, *, params: list | None = None, body: dict | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            "200": {"description": "OK"},
            "default": {
                "description": "An error, in the OpenAI shape",
                "content": {"application/json": {"schema": ERROR}},
            },
        },
    }
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = body
    return op


FILE_ID, JOB_ID, MODEL = _path("file_id"), _path("job_id"), _path("model")

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "ftui serve",
        "version": "1",
        "description": "A local server for the OpenAI fine-tuning API (legacy /v1/fine-tunes and "
        "current /v1/fine_tuning/jobs), files, models, completions and chat completions.",
    },
    "paths": {
        "/v1/files": {
            "get": _op(
                "List files",
                params=[
                    _query("purpose", STRING),
                    _query("order", {"type": "string", "enum": ["asc", "desc"]}),
                    *PAGE,
                ],
            ),
            "post": _op(
                "Upload a file",
                body={"required": True, "content": {"multipart/form-data": {"schema": UPLOAD}}},
            ),
        },
        "/v1/files/{file_id}": {
            "get": _op("Retrieve a file", params=[FILE_ID]),
            "delete": _op("Delete a file", params=[FILE_ID]),
        },
        "/v1/files/{file_id}/content": {"get": _op("Download a file", params=[FILE_ID])},
        "/v1/fine-tunes": {
            "get": _op("List legacy fine-tunes"),
            "post": _op("Create a legacy fine-tune", body=_json_body(LEGACY_CREATE)),
        },
        "/v1/fine-tunes/{job_id}": {
            "get": _op("Retrieve a legacy fine-tune", params=[JOB_ID]),
            "delete": _op("Delete a finished legacy fine-tune", params=[JOB_ID]),
        },
        "/v1/fine-tunes/{job_id}/cancel": {"post": _op("Cancel", params=[JOB_ID])},
        "/v1/fine-tunes/{job_id}/events": {
            "get": _op(
                "List events, or stream them (server-sent events) with stream=true",
                params=[JOB_ID, _query("stream", {"type": "boolean"})],
            )
        },
        "/v1/fine_tuning/jobs": {
            "get": _op(
                "List fine-tuning jobs, newest first; metadata[KEY]=VALUE filters",
                params=PAGE,
            ),
            "post": _op("Create a fine-tuning job", body=_json_body(CURRENT_CREATE)),
        },
        "/v1/fine_tuning/jobs/{job_id}": {"get": _op("Retrieve a job", params=[JOB_ID])},
        "/v1/fine_tuning/jobs/{job_id}/cancel": {"post": _op("Cancel", params=[JOB_ID])},
        "/v1/fine_tuning/jobs/{job_id}/pause": {"post": _op("Pause", params=[JOB_ID])},
        "/v1/fine_tuning/jobs/{job_id}/resume": {"post": _op("Resume", params=[JOB_ID])},
        "/v1/fine_tuning/jobs/{job_id}/events": {
            "get": _op("List events, newest first", params=[JOB_ID, *PAGE])
        },
        "/v1/fine_tuning/jobs/{job_id}/checkpoints": {
            "get": _op("List checkpoints, newest first", params=[JOB_ID, *PAGE])
        },
        "/v1/models": {"get": _op("List base and fine-tuned models")},
        "/v1/models/{model}": {
            "get": _op("Retrieve a model", params=[MODEL]),
            "delete": _op("Delete a fine-tuned model", params=[MODEL]),
        },
        "/v1/completions": {"post": _op("Create a completion", body=_json_body(COMPLETION))},
        "/v1/chat/completions": {
            "post": _op("Create a chat completion", body=_json_body(CHAT_COMPLETION))
        },
        "/v1/engines/{model}/completions": {
            "post": _op(
                "Create a completion (older clients)",
                params=[MODEL],
                body=_json_body(ENGINE_COMPLETION),
            )
        },
    },
    "components": {
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["message", "type", "param", "code"],
                        "properties": {
                            "message": STRING,
                            "type": STRING,
                            "param": _nullable(STRING),
                            "code": _nullable(STRING),
                        },
                    }
                },
            }
        },
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
    "security": [{}, {"bearer": []}],
}


async def describe(request: Request) -> Response:
    return JSONResponse(DOCUMENT)
