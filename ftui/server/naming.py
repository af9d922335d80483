"""Fine-tuned model names, as each dialect of the original service made them."""

from __future__ import annotations

import re
import secrets
import string
import time

_LEGACY_SUFFIX_JUNK = re.compile(r"[\W_]+")
_CURRENT_SUFFIX_JUNK = re.compile(r"[^A-Za-z0-9_-]+")


def normalize_legacy_suffix(suffix: str) -> str:
    """Punctuation and whitespace become one dash, and the result is lower-cased."""
    return _LEGACY_SUFFIX_JUNK.sub("-", suffix).strip("-").lower()


def normalize_current_suffix(suffix: str) -> str:
    return _CURRENT_SUFFIX_JUNK.sub("-", suffix).strip("-")


def org_slug(organization_id: str) -> str:
    return organization_id.removeprefix("org-") or "personal"


def base_stem(model: str) -> str:
    """The base a name starts with: a fine-tuned model's root, or the last part of a path/id."""
    if model.startswith("ft:"):
        return model.split(":")[1]
    if ":ft-" in model:
        return model.split(":", 1)[0]
    return model.rstrip("/").rsplit("/", 1)[-1]


def legacy_name(base: str, organization_id: str, suffix: str | None, when: int) -> str:
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(when))
    middle = f"ft-{org_slug(organization_id)}"
    if suffix:
        middle += f":{normalize_legacy_suffix(suffix)}"
    return f"{base_stem(base)}:{middle}-{stamp}"


def new_tag() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def current_name(base: str, organization_id: str, suffix: str | None, tag: str) -> str:
    cleaned = normalize_current_suffix(suffix) if suffix else ""
    return f"ft:{base_stem(base)}:{org_slug(organization_id)}:{cleaned}:{tag}"


def checkpoint_name(model_name: str, step: int) -> str:
    return f"{model_name}:ckpt-step-{step}"
