"""Checkpoints: servable model directories plus the trainer state needed to resume exactly.

Layout: ``CHECKPOINTS_DIR/step-0000123/`` is a Hugging Face model directory (merged weights when
training with LoRA, tokenizer included) that loads with plain ``AutoModelForCausalLM``, plus
``trainer_state.pt`` in the newest checkpoint only. Directories are written as ``….partial`` and
renamed, so a listed checkpoint is always complete. This module never deletes checkpoint
directories (the runner keeps the last three); it only drops ``trainer_state.pt`` from older ones.

``trainer_state.pt`` holds plain containers and tensors only, so it loads with
``torch.load(weights_only=True)``: optimizer and scheduler state, RNG states (torch, CUDA, Python,
numpy), the step, the epoch in progress, how many of that epoch's batches are done, the epoch's
batch order, the running counters, the LoRA adapter tensors when LoRA is used, and the
hyperparameters to check a resume against.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

STATE_FILE = "trainer_state.pt"
FORMAT = 1
PARTIAL = ".partial"


def checkpoint_name(step: int) -> str:
    return f"step-{step:07d}"


def write_dir_atomically(final: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on ``final.partial`` then rename it to ``final``: ``final`` is either
    absent, the old complete directory, or the new complete one."""
    final = Path(final)
    partial = final.with_name(final.name + PARTIAL)
    shutil.rmtree(partial, ignore_errors=True)  # left by an earlier, killed attempt
    partial.mkdir(parents=True)
    try:
        write(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    try:
        if final.exists():  # os.replace cannot replace a non-empty directory
            old = final.with_name(final.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            try:
                os.replace(partial, final)
            except OSError:
                os.replace(old, final)  # keep the old complete directory
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


# ---------------------------------------------------------------- RNG states


def capture_rng() -> dict[str, Any]:
    import numpy as np
    import torch

    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype("int64")), pos, has_gauss, cached],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype("uint32"), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------- writing and reading


def save_checkpoint(
    root: Path,
    step: int,
    write_model: Callable[[Path], None],
    state: dict[str, Any],
) -> Path:
    """Write ``root/step-{step}`` (model via ``write_model(dir)``, then the trainer state)
    atomically and return its path."""
    import torch

    final = Path(root) / checkpoint_name(step)

    def write(tmp: Path) -> None:
        write_model(tmp)
        torch.save({"format": FORMAT, **state}, tmp / STATE_FILE)

    Path(root).mkdir(parents=True, exist_ok=True)
    write_dir_atomically(final, write)
    return final


def drop_older_states(root: Path, newest: Path) -> None:
    """Only the newest checkpoint keeps ``trainer_state.pt``; the others stay servable models."""
    try:
        entries = list(Path(root).iterdir())
    except OSError:
        return
    newest = Path(newest).resolve()
    for entry in entries:
        if entry.name.startswith("step-") and entry.resolve() != newest:
            (entry / STATE_FILE).unlink(missing_ok=True)


def load_state(checkpoint: Path) -> dict[str, Any]:
    import torch

    path = Path(checkpoint) / STATE_FILE
    if not (Path(checkpoint) / "config.json").is_file():
        raise FileNotFoundError(f"The checkpoint {checkpoint} to resume from does not exist.")
    if not path.is_file():
        raise FileNotFoundError(
            f"The checkpoint {checkpoint} has no {STATE_FILE}: only the newest checkpoint of a "
            "job can be resumed from (older ones remain usable as models)."
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format") != FORMAT:
        raise ValueError(f"{path} has an unknown format {state.get('format')!r}.")
    return state
