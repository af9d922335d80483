"""Environment for processes that run torch and tokenizers: the training child and inference.

OpenMP reads these at start-up, so they must be set before torch is first imported. PASSIVE
stops idle OpenMP worker threads spinning, which made 2 threads 2.5–4× slower than 1 on a shared
machine; tokenizers' own thread pool would compete with torch's threads and warns after a fork.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

RUNTIME_ENV: Mapping[str, str] = {"OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false"}


def runtime_env(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set the defaults in this process (a value the user set explicitly is kept)."""
    for key, value in RUNTIME_ENV.items():
        environ.setdefault(key, value)


def child_env(environ: Mapping[str, str], drop: tuple[str, ...] = ()) -> dict[str, str]:
    """The environment for a training child: ``environ`` less ``drop``, with RUNTIME_ENV."""
    return {**{k: v for k, v in environ.items() if k not in drop}, **RUNTIME_ENV}
