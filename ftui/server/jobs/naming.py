"""Fine-tuned model names, as each dialect of the original service made them."""

from __future__ import annotations

import re
import secrets
import string
import time

from ftui import dialects

# An organization id becomes part of model names (`ft:tiny:<org>:…`), `owned_by`, and the
# directory a model is stored in; a short id of plain characters keeps all three safe to print
# and to use as a file name. Real ids look like `org-` and 24 letters and digits.
ORGANIZATION_MAX_CHARS = 64
_ORGANIZATION_OK = re.compile(r"[A-Za-z0-9_-]+")


def control_character(text: str) -> tuple[int, str] | None:
    """The first C0/C1 control character or DEL in `text` and its position, if there is one.

    Names that end up in listings must not carry them: printed raw, they rewrite the terminal
    of whoever lists them (titles, colours, cleared screens).
    """
    for index, char in enumerate(text):
        if ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F:
            return index, f"U+{ord(char):04X}"
    return None


def organization_problem(organization_id: str) -> str | None:
    """Why an `OpenAI-Organization` header value cannot be used, or None if it can."""
    bad = control_character(organization_id)
    if bad is not None:
        return (
            f"The OpenAI-Organization header contains a control character ({bad[1]} at "
            f"position {bad[0]}); organization ids are letters, digits, '-' and '_'."
        )
    if len(organization_id) > ORGANIZATION_MAX_CHARS:
        return (
            f"The OpenAI-Organization header is {len(organization_id)} characters long; "
            f"organization ids are at most {ORGANIZATION_MAX_CHARS}."
        )
    if not _ORGANIZATION_OK.fullmatch(organization_id):
        return (
            "The OpenAI-Organization header may hold only letters, digits, '-' and '_'; "
            f"got {organization_id[:ORGANIZATION_MAX_CHARS]!r}."
        )
    return None


def org_slug(organization_id: str) -> str:
    return organization_id.removeprefix("org-") or "personal"


def base_stem(model: str) -> str:
    """The base a name starts with: a fine-tuned model's root, or the last part of a path/id."""
    if model.startswith("ft:"):
        return model.split(":")[1]
    if dialects.is_fine_tuned(model):  # legacy: base:ft-org…
        return model.split(":", 1)[0]
    return model.rstrip("/").rsplit("/", 1)[-1]


def legacy_name(base: str, organization_id: str, suffix: str | None, when: int) -> str:
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(when))
    middle = f"ft-{org_slug(organization_id)}"
    if suffix:
        middle += f":{dialects.normalize_legacy_suffix(suffix)}"
    return f"{base_stem(base)}:{middle}-{stamp}"


def new_tag() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def current_name(base: str, organization_id: str, suffix: str | None, tag: str) -> str:
    cleaned = dialects.normalize_current_suffix(suffix) if suffix else ""
    return f"ft:{base_stem(base)}:{org_slug(organization_id)}:{cleaned}:{tag}"


def checkpoint_name(model_name: str, step: int) -> str:
    return f"{model_name}:ckpt-step-{step}"
