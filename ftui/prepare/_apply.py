"""Applying a report: the necessary fixes, the accepted optional ones, the split, the write.

One module, although long: the fixes run in the legacy tool's order over one table, and the
split and the write depend on what every fix before them did."""

from __future__ import annotations

import json
import operator
import os
import shlex
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any

from . import _text
from ._checks import (
    SPLIT_SEED,
    ChatState,
    PCState,
    rows_text,
    split_sizes,
)
from ._model import CLASSIFICATION, CONDITIONAL, OPEN_ENDED, PrepareError, Report

POSITIVE_WORDS = frozenset(
    ["positive", "pos", "yes", "y", "true", "t", "1", "good", "correct", "relevant"]
)
MAX_NAME_TRIES = 10_000
_FADVISE = hasattr(os, "posix_fadvise") and hasattr(os, "POSIX_FADV_DONTNEED")


class Written(list):
    """The paths written (a list of ``Path``; empty when nothing needed writing), with what the
    fine-tune command needs to know about the final data."""

    def __init__(self, paths: Iterable[Path] = ()) -> None:
        super().__init__(paths)
        self.source: str | None = None
        self.train: Path | None = None
        self.valid: Path | None = None
        self.n_train = 0
        self.n_valid = 0
        self.task_type: str | None = None
        self.separator: str | None = None  # the prompts' common ending, to use at inference
        self.stop: str | None = None  # the completions' common ending, the stop sequence
        self.n_classes: int | None = None
        self.positive_class: str | None = None
        self.notes: list[str] = []

    def command(self, model: str | None = None) -> str:
        """The ftui command that fine-tunes with these files."""
        train = self.train or (Path(self.source) if self.source else None)
        parts = ["ftui", "create", "-t", quote(str(train) if train else "FILE")]
        if self.valid:
            parts += ["-v", quote(str(self.valid))]
        if model:
            parts += ["-m", quote(model)]
        if self.valid and self.n_classes:
            parts.append("--compute-classification-metrics")
            if self.n_classes == 2 and self.positive_class is not None:
                parts += ["--classification-positive-class", quote(self.positive_class)]
            else:
                parts += ["--classification-n-classes", str(self.n_classes)]
        return " ".join(parts)

    def to_dict(self, model: str | None = None) -> dict[str, Any]:
        return {
            "written": [str(p) for p in self],
            "train": str(self.train) if self.train else None,
            "valid": str(self.valid) if self.valid else None,
            "n_train": self.n_train,
            "n_valid": self.n_valid,
            "task_type": self.task_type,
            "separator": self.separator,
            "stop": self.stop,
            "n_classes": self.n_classes,
            "positive_class": self.positive_class,
            "notes": self.notes,
            "command": self.command(model),
        }


_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_")


def quote(s: str) -> str:
    """Shell quoting that prefers double quotes (as the legacy advice printed them) when exact."""
    if s and all(c in _SAFE for c in s):
        return s
    if not any(c in s for c in '"\\$`!\n\r'):
        return f'"{s}"'
    return shlex.quote(s)


# ---------------------------------------------------------------- entry point


def apply(
    report: Report,
    accepted: Iterable[str] | bool = (),
    *,
    output: str | os.PathLike[str] | None = None,
) -> Written:
    """Write the prepared file(s) for ``report`` and return the paths written.

    The necessary fixes are always applied; of the optional ones only those whose finding ids
    are in ``accepted`` (``True`` accepts them all, as ``-q`` does). ``output`` is a file name (a
    split inserts ``_train``/``_valid`` before ``.jsonl``) or a directory; by default the files go
    beside the input as ``<name>_prepared.jsonl`` (or ``_prepared_train``/``_prepared_valid``).
    Existing files are never overwritten: ``(1)``, ``(2)``… are added as the legacy tool did.
    Each file appears complete or not at all. When there is nothing to fix and nothing to split,
    nothing is written and the result is empty. Does not modify ``report``.
    """
    if report.errors:
        raise PrepareError(
            "cannot be prepared: " + "; ".join(f.message.split("\n")[0] for f in report.errors),
            path=report.path,
        )
    optional = {f.id for f in report.optional}
    if accepted is True:
        chosen = set(optional)
    elif accepted is False or accepted is None:
        chosen = set()
    else:
        chosen = set(accepted)
        unknown = chosen - optional
        if unknown:
            raise ValueError(f"not optional findings of this report: {', '.join(sorted(unknown))}")
    written = Written()
    written.source = report.path
    state = report._state
    if isinstance(state, ChatState):
        return _apply_chat(report, state, chosen, output, written)
    assert isinstance(state, PCState)
    return _apply_pc(report, state, chosen, output, written)


def _dropped(state: PCState | ChatState, chosen: set[str]) -> list[int]:
    drop: set[int] = set()
    for fid, positions in state.drops.items():
        if fid in chosen:
            drop.update(positions)
    return sorted(drop)


class _Fixes:
    """The accepted per-row fixes, applied to chunks of rows (never to whole columns at once, so
    the prepared copy of a big file is never all in memory).

    Text added to every row (the separator, the ending, the leading space) is not glued onto
    each string: a chunk comes back as (cores, head, tail) and the writer puts the constant parts
    around each core, which saves building a million new strings.
    """

    def __init__(self, state: PCState, chosen: set[str]) -> None:
        self.lower_p = lower_p = "lowercase_prompt" in chosen
        self.sep = (state.separator or "") if "separator" in chosen else ""
        pfx = state.prompt_prefix if "prompt_prefix" in chosen else None
        self.pfx = pfx.lower() if pfx and lower_p else pfx
        self.lower_c = lower_c = "lowercase_completion" in chosen
        cpfx = state.completion_prefix if "completion_prefix" in chosen else None
        self.cpfx = cpfx.lower() if cpfx and lower_c else cpfx
        self.ending = (state.ending or "") if "ending" in chosen else ""
        self.space = "leading_space" in chosen

    def emptied(self, completions: Sequence[str], positions: Iterable[int]) -> list[int]:
        """Positions whose completion is nothing but the prefix to remove."""
        if not self.cpfx:
            return []
        cpfx = self.cpfx
        if self.lower_c:
            return [i for i in positions if completions[i].lower() == cpfx]
        return [i for i in positions if completions[i] == cpfx]

    def prompts(self, values: Sequence[str]) -> tuple[Sequence[str], str]:
        """(cores, tail): each final prompt is core + tail."""
        if self.lower_p:
            values = list(map(str.lower, values))
        if self.pfx:
            values = _strip(values, self.pfx)
        return values, self.sep

    def completions(self, values: Sequence[str]) -> tuple[Sequence[str], str, str]:
        """(cores, head, tail): each final completion is head + core + tail."""
        if not (self.lower_c or self.cpfx or self.ending or self.space):
            return values, "", ""
        distinct = set(values)
        if len(distinct) * 4 < len(values):  # labels: fix each once, share the results
            labels = list(distinct)
            fixed = dict(zip(labels, self.full_completions(labels), strict=True))
            return list(map(fixed.__getitem__, values)), "", ""
        return self._completions(values)

    def full_completions(self, values: Sequence[str]) -> list[str]:
        cores, head, tail = self._completions(values)
        return [head + c + tail for c in cores]

    def _completions(self, values: Sequence[str]) -> tuple[Sequence[str], str, str]:
        head = ""
        if self.lower_c:
            values = list(map(str.lower, values))
        if self.cpfx:
            values = _strip(values, self.cpfx)
            if self.cpfx.startswith(" "):  # as the legacy tool: keep one leading space
                head = " "
        if self.space and not head:
            # completions are never empty here, so the core's first character decides
            if _text.none_start_with(values, " "):
                head = " "
            elif not _text.all_start_with(values, " "):
                values = [v if v.startswith(" ") else " " + v for v in values]
        return values, head, self.ending


def _strip(values: Sequence[str], prefix: str) -> list[str]:
    """Remove ``prefix`` from the values that start with it."""
    cut = slice(len(prefix), None)
    if _text.all_start_with(values, prefix):
        return list(map(operator.getitem, values, repeat(cut)))
    return [v[cut] if v.startswith(prefix) else v for v in values]


def _take(values: Sequence[str], index: Sequence[int]) -> Sequence[str]:
    if isinstance(index, range) and index.step == 1:
        return values[index.start : index.stop]
    if len(index) == 1:
        return [values[index[0]]]
    if not index:
        return []
    return list(operator.itemgetter(*index)(values))


def _apply_pc(
    report: Report, state: PCState, chosen: set[str], output: Any, written: Written
) -> Written:
    fixes = _Fixes(state, chosen)
    prompts, completions = state.prompts, state.completions
    gone = _dropped(state, chosen)
    n0 = len(prompts)
    keep: Sequence[int] = range(n0)
    if gone:
        keep = _text.drop_positions(range(n0), gone)
    emptied = fixes.emptied(completions, keep)
    if emptied:
        written.notes.append(
            f"Removed {len(emptied):,} rows whose completion was only the prefix"
            f" `{_text.show(fixes.cpfx or '')}`:"
            f" {rows_text(report.unit, [state.locs[i] for i in emptied])}"
        )
        gone_set = set(emptied)
        keep = [i for i in keep if i not in gone_set]
    n = len(keep)

    split = "split" in chosen and n > 1
    if split:
        import numpy as np

        n_train, _ = split_sizes(n)
        order = np.random.RandomState(SPLIT_SEED).permutation(n)[:n_train]
        held = np.zeros(n, dtype=bool)
        held[order] = True
        keep_arr = np.asarray(keep, dtype=np.int64)
        parts = [keep_arr[order].tolist(), keep_arr[~held].tolist()]
        written.n_train, written.n_valid = n_train, n - n_train
    else:
        parts = [keep]
        written.n_train = n

    facts = _Facts()
    # Each removed row takes away at most one distinct completion.
    at_least = state.n_distinct - (n0 - n)
    removed = sorted(set(gone) | set(emptied))
    _classify(
        fixes,
        completions,
        keep,
        written,
        "split" in chosen,
        at_least,
        state.any_spaced,
        report.classes,
        removed,
    )
    specials = set(state.specials) | set(fixes.sep) | set(fixes.ending)
    specials = {ch for ch in specials if ch < " " or ch in '"\\' or "\ud800" <= ch <= "\udfff"}

    def lines(index: Sequence[int]) -> Iterator[str]:
        for start in range(0, len(index), _text.CHUNK):
            part = index[start : start + _text.CHUNK]
            ps, ptail = fixes.prompts(_take(prompts, part))
            cs, chead, ctail = fixes.completions(_take(completions, part))
            facts.add(ps, ptail, cs, chead, ctail)
            yield _text.jsonl_chunk(ps, ptail, cs, chead, ctail, specials)

    if report.necessary or chosen:
        paths = _write_all(report, output, [lines(p) for p in parts], split=split)
        written.extend(paths)
        written.train = paths[0]
        written.valid = paths[1] if split else None
    else:  # the input can be used as it is
        for _ in lines(keep):
            pass
    facts.finish(written)
    return written


def _classify(
    fixes: _Fixes,
    completions: Sequence[str],
    keep: Sequence[int],
    written: Written,
    force: bool,
    at_least: int,
    spaced: bool,
    classes: dict[str, int] | None,
    removed: Sequence[int],
) -> None:
    """Task type by the final completions (how many distinct), and the class flags."""
    n = len(keep)
    # Fixes only merge values by lowercasing or by adding the leading space to `x` when ` x`
    # also exists; otherwise they keep the number of distinct completions.
    injective = not fixes.lower_c and not (fixes.space and spaced)
    if not force and at_least * 3 >= n and injective:
        written.task_type = CONDITIONAL
        return
    if classes is not None:  # counted by analyze: take away the rows removed since
        counts = Counter(classes)
        counts.subtract(completions[i] for i in removed)
        counts = +counts
        kept: Sequence[str] = ()
        distinct: Any = counts.keys()
    else:
        kept = _take(completions, keep)
        distinct = set(kept)
    if len(distinct) * 3 >= n and not force:
        merges = fixes.lower_c
        if fixes.space and not merges and not _text.none_start_with(distinct, " "):
            spaced = {v[1:] for v in distinct if v.startswith(" ")}
            merges = not spaced.isdisjoint(distinct)
        if not merges:
            written.task_type = CONDITIONAL
            return
        hashes: set[int] = set()
        for part in _text.chunks(list(distinct)):
            hashes.update(map(hash, fixes.full_completions(part)))
        if len(hashes) * 3 >= n:
            written.task_type = CONDITIONAL
            return
    if classes is None:
        counts = Counter(kept)
    del kept, distinct
    labels = list(counts)
    final: Counter[str] = Counter()
    for label, fixed in zip(labels, fixes.full_completions(labels), strict=True):
        final[fixed] += counts[label]
    written.task_type = CLASSIFICATION if len(final) < n / 3 else CONDITIONAL
    written.n_classes = len(final)
    if len(final) == 2:
        written.positive_class = _positive_class(final)


def _suffix_with_head(cores: Sequence[str], head: str) -> str:
    """The common suffix of head + core over a chunk."""
    common = _text.common_suffix(cores)
    if not head or min(map(len, cores)) > len(common):
        return common  # no core is all suffix, so the head never takes part
    return _text.common_suffix([head + c if len(c) == len(common) else c for c in cores])


class _Facts:
    """What the fine-tune command needs about the final data, gathered chunk by chunk."""

    def __init__(self) -> None:
        self.n = 0
        self.any_prompt = False
        self.psuffix: str | None = None
        self.csuffix: str | None = None
        self.ptail = self.ctail = ""

    def add(self, ps: Sequence[str], ptail: str, cs: Sequence[str], chead: str, ctail: str) -> None:
        if not ps:
            return
        self.n += len(ps)
        self.ptail, self.ctail = ptail, ctail
        self.any_prompt = self.any_prompt or bool(ptail) or any(ps)
        if self.psuffix != "":
            self.psuffix = _text.common_suffix(ps, self.psuffix)
        if self.csuffix != "":
            chunk = _suffix_with_head(cs, chead)
            if self.csuffix is not None:
                chunk = _text.common_suffix([chunk], self.csuffix)
            self.csuffix = chunk

    def finish(self, written: Written) -> None:
        if not self.any_prompt:
            written.task_type = OPEN_ENDED
        task = written.task_type
        if task != OPEN_ENDED and self.n > 1:
            written.separator = (self.psuffix or "") + self.ptail or None
        if task != CLASSIFICATION and self.n > 1:
            written.stop = (self.csuffix or "") + self.ctail or None


def _positive_class(counts: Counter[str]) -> str:
    labels = list(counts)
    positive = [x for x in labels if x.strip().lower() in POSITIVE_WORDS]
    if len(positive) == 1:
        return positive[0]
    return counts.most_common(1)[0][0]  # the legacy choice: the most frequent label


def _apply_chat(
    report: Report, state: ChatState, chosen: set[str], output: Any, written: Written
) -> Written:
    gone = _dropped(state, chosen)
    values = _text.drop_positions(state.examples, gone)
    written.task_type = None
    if not (report.necessary or chosen):
        return written
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    def lines() -> Iterator[str]:
        for chunk in _text.chunks(values):
            yield "".join([dumps(v) + "\n" for v in chunk])

    paths = _write_all(report, output, [lines()], split=False)
    written.extend(paths)
    written.train = paths[0]
    written.n_train = len(values)
    return written


# ---------------------------------------------------------------- files


def _base(report: Report, output: Any) -> str:
    if output is not None:
        out = os.fspath(output)
        if os.path.isdir(out) or out.endswith(os.sep):
            stem = Path(report.path).stem if report.path else "data"
            return os.path.join(out, stem + "_prepared")
        return out[: -len(".jsonl")] if out.lower().endswith(".jsonl") else out
    if report.path is None:
        raise PrepareError("the data has no file name; give an output path")
    return os.path.splitext(report.path)[0] + "_prepared"


def _names(base: str, split: bool, index: int) -> list[str]:
    tag = f" ({index})" if index else ""
    suffixes = ["_train", "_valid"] if split else [""]
    return [f"{base}{s}{tag}.jsonl" for s in suffixes]


def _write_all(
    report: Report, output: Any, contents: Sequence[Iterator[str]], split: bool
) -> list[Path]:
    base = _base(report, output)
    folder = os.path.dirname(base) or "."
    temps = []
    try:
        for chunks in contents:
            temps.append(_write_temp(folder, os.path.basename(base), chunks))
        for index in range(MAX_NAME_TRIES):
            names = _names(base, split, index)
            if any(os.path.lexists(n) for n in names):
                continue
            done: list[str] = []
            try:
                for tmp, name in zip(temps, names, strict=True):
                    _publish(tmp, name)
                    done.append(name)
            except FileExistsError:  # another writer took the name meanwhile
                for name in done:
                    os.unlink(name)
                continue
            return [Path(n) for n in names]
        raise PrepareError(f"no free output name like {names[0]}", path=report.path)
    except OSError as exc:
        raise PrepareError(
            f"cannot write the prepared file: {exc.strerror or exc}", path=report.path
        ) from None
    finally:
        for tmp in temps:
            if os.path.exists(tmp):
                os.unlink(tmp)


def _write_temp(folder: str, stem: str, chunks: Iterator[str]) -> str:
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb", buffering=0) as f:
            offset = 0
            for chunk in chunks:
                data = memoryview(chunk.encode("utf-8"))
                start = offset
                while data:
                    done = f.write(data)
                    data = data[done:]
                    offset += done
                if _FADVISE:  # start writing it to disk now, so the final sync has little to do
                    os.posix_fadvise(fd, start, offset - start, os.POSIX_FADV_DONTNEED)
            os.fsync(fd)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _publish(tmp: str, name: str) -> None:
    """Give the finished temp file its name, atomically and without replacing anything."""
    try:
        os.link(tmp, name)  # fails with FileExistsError when the name is taken
    except FileExistsError:
        raise
    except OSError:  # no hard links here: check, then rename
        if os.path.lexists(name):
            raise FileExistsError(name) from None
        os.replace(tmp, name)
        return
    os.unlink(tmp)
