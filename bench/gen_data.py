#!/usr/bin/env python3
"""The prepare-data benchmark sets: deterministic synthetic prompt/completion files.

These are the sets the legacy `openai tools fine_tunes.prepare_data` (openai 0.28.1) was timed
on, so ftui can be compared with its published figures: the same arguments give the same bytes
on any CPython 3.11+ (the standard library's Mersenne Twister, no numpy); tests/test_prepare.py
pins the SHA-256 of the 10k sets and two 100k ones.

Two kinds:

- ``cls`` (classification-like): the prompt is one pseudo-English sentence of 4 to 30 words
  ending in `.`, `!` or `?` (so no common suffix and no newline); the completion is one of four
  labels, positive/negative/neutral/mixed with weights .4/.3/.2/.1 and no leading space. About
  1% of rows repeat an earlier row exactly, about 0.1% have an empty completion.
- ``gen`` (conditional generation): the prompt is the 31-character instruction
  `Write a reply to this message: ` and 1 to 3 sentences, joined by a newline in about 20% of
  rows; the completion is 1 to 4 sentences, split into paragraphs in about 20% of rows; about
  0.05% of completions are over 10,000 characters. No duplicates, no empty completions.

About 15% of sentences carry a comma, so the CSV files exercise quoting. Words are 1 to 4
syllables from a fixed 5,000-word vocabulary.

JSONL: one ``{"prompt": …, "completion": …}`` object per line (``json.dumps`` defaults). CSV: a
`prompt,completion` header, minimal quoting, `\\n` line ends.

    python bench/gen_data.py --kind cls --rows 10000 --format jsonl --out cls_10000.jsonl
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path

KINDS = ("cls", "gen")
FORMATS = ("jsonl", "csv")
VOCABULARY_SEED = 12345  # the vocabulary is the same whatever --seed says
VOCABULARY_SIZE = 5000
# The order matters: words are drawn by position.
# fmt: off
SYLLABLES = [
    "ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "pe", "da", "gri", "mon",
    "ter", "bal", "qui", "zen", "fa", "lu", "sor", "wen", "ix", "po", "dre", "an",
]
# fmt: on
LABELS = ["positive", "negative", "neutral", "mixed"]
LABEL_WEIGHTS = [0.4, 0.3, 0.2, 0.1]
INSTRUCTION = "Write a reply to this message: "

Row = tuple[str, str]


def vocabulary() -> list[str]:
    rng = random.Random(VOCABULARY_SEED)
    words: set[str] = set()
    while len(words) < VOCABULARY_SIZE:
        syllables = rng.randint(1, 4)
        words.add("".join(rng.choice(SYLLABLES) for _ in range(syllables)))
    return sorted(words)


class Writer:
    """Sentences drawn from one random stream. Every draw is made in a fixed order (length,
    words, comma, final mark), since the bytes of a set are defined by that sequence."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.words = vocabulary()

    def sentence(self, shortest: int, longest: int, end: str | None = None) -> str:
        rng = self.rng
        length = rng.randint(shortest, longest)
        words = [rng.choice(self.words) for _ in range(length)]
        words[0] = words[0].capitalize()
        if rng.random() < 0.15:
            words[rng.randrange(length)] += ","
        return " ".join(words) + (rng.choice(".!?") if end is None else end)

    def sentences(self, count: int, shortest: int, longest: int, end: str | None = None) -> list:
        return [self.sentence(shortest, longest, end) for _ in range(count)]


def classification_rows(writer: Writer, n: int) -> Iterator[Row]:
    rng = writer.rng
    made: list[Row] = []
    for _ in range(n):
        if made and rng.random() < 0.01:
            row = made[rng.randrange(len(made))]
        else:
            prompt = writer.sentence(4, 30)
            empty = rng.random() < 0.001
            label = "" if empty else rng.choices(LABELS, LABEL_WEIGHTS)[0]
            row = (prompt, label)
        made.append(row)
        yield row


def generation_rows(writer: Writer, n: int) -> Iterator[Row]:
    rng = writer.rng
    for _ in range(n):
        message = writer.sentences(rng.randint(1, 3), 3, 18)
        joiner = "\n" if rng.random() < 0.2 else " "
        prompt = INSTRUCTION + joiner.join(message)
        if rng.random() < 0.0005:  # a very long completion: over 10,000 characters
            completion = " ".join(writer.sentences(220, 10, 20, "."))
        else:
            reply = writer.sentences(rng.randint(1, 4), 3, 20)
            completion = ("\n\n" if rng.random() < 0.2 else " ").join(reply)
        yield prompt, completion


def rows(kind: str, n: int, seed: int = 1) -> Iterator[Row]:
    make = {"cls": classification_rows, "gen": generation_rows}[kind]
    return make(Writer(seed), n)


def write(path: str | os.PathLike[str], kind: str, n: int, fmt: str, seed: int = 1) -> Path:
    """Write one set to ``path`` (through a temporary file, so a half-written set never has the
    final name) and return the path."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part")
    if fmt == "jsonl":
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for prompt, completion in rows(kind, n, seed):
                f.write(json.dumps({"prompt": prompt, "completion": completion}) + "\n")
    elif fmt == "csv":
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            out = csv.writer(f, lineterminator="\n")
            out.writerow(["prompt", "completion"])
            out.writerows(rows(kind, n, seed))
    else:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    os.replace(tmp, path)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kind", choices=KINDS, required=True)
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--format", choices=FORMATS, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    write(args.out, args.kind, args.rows, args.format, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
