"""`ftui prepare-data FILE`: check a training file, explain what is wrong, fix it, write JSONL.

The checks are those of the legacy `openai tools fine_tunes.prepare_data` (see ftui.prepare). The
command prints the findings, asks about each optional fix (`-q` accepts them all; an answer of
`n`/`no` declines, end of input takes the default, yes), writes `<name>_prepared.jsonl` (or a
train/valid pair) and prints the `ftui create` command that fine-tunes with it. `--json` prints the
report (and, with `-q`, what was written) as one JSON document for scripts and asks nothing.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ftui.commands._common import say
from ftui.textsafe import safe_json

YES = ("", "y", "yes")
NO = ("n", "no")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prepare-data",
        help="check, explain and fix a training file",
        description="Check a fine-tuning file (CSV, TSV, XLSX, JSON, JSONL or TXT), explain what"
        " is wrong, fix it, and write <name>_prepared.jsonl (or _prepared_train.jsonl and"
        " _prepared_valid.jsonl for classification).",
    )
    p.add_argument("file", help="the training data")
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="accept every recommended fix without asking (for scripts)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the report as JSON and ask nothing; with -q, also write the files",
    )
    p.add_argument(
        "-o",
        "--output",
        help="output file (a split adds _train/_valid) or directory; default: beside the input",
    )
    p.add_argument(
        "-m",
        "--model",
        help="base model: its tokenizer counts tokens when it is on this machine, its context"
        " window bounds the examples, and the suggested command uses it",
    )
    p.set_defaults(func=_run)


def _data_dir() -> Any:
    try:
        from ftui.datadir import server_data_dir

        return server_data_dir()
    except Exception:  # without a data dir only the built-in model names are known
        return None


def _run(args: argparse.Namespace) -> int:
    from ftui.prepare import PrepareError, analyze, apply

    out = sys.stdout
    if not args.json:
        say("Analyzing...", file=out, flush=True)
    try:
        report = analyze(args.file, model=args.model, data_dir=_data_dir())
    except PrepareError as exc:
        if args.json:
            say(safe_json({"error": exc.to_dict()}, indent=2), file=out)
        else:
            say(f"\nERROR: {exc}\n\nAborting...", file=sys.stderr)
        return 1

    if args.json:
        return _run_json(args, report, apply, PrepareError)

    for f in report.findings:
        if f.kind in ("error",):
            continue
        prefix = "WARNING: " if f.kind == "warning" else ""
        say(f"\n- {prefix}{f.message}", end="", file=out)
    say(file=out)
    if report.errors:
        for f in report.errors:
            say(f"\nERROR in {f.id} check: {f.message}", file=sys.stderr)
        say("\nAborting...", file=sys.stderr)
        return 1

    accepted: list[str] = []
    actions = [f for f in report.findings if f.kind in ("necessary", "optional")]
    if actions:
        say("\n\nBased on the analysis we will perform the following actions:", file=out)
        for f in actions:
            if f.kind == "necessary":
                say(f"- [Necessary] {f.action}", file=out)
            elif _ask(f"- [Recommended] {f.action} [Y/n]: ", args.quiet):
                accepted.append(f.id)
    else:
        say("\n\nNo remediations found.", file=out)

    if (report.necessary or accepted) and not _ask(
        "\n\nYour data will be written to a new JSONL file. Proceed [Y/n]: ", args.quiet
    ):
        say("Aborting... did not write the file", file=out)
        return 0
    try:
        written = apply(report, accepted, output=args.output)
    except PrepareError as exc:
        say(f"\nERROR: {exc}", file=sys.stderr)
        return 1
    say(_advice(written, args.model), file=out)
    return 0


def _run_json(args: argparse.Namespace, report: Any, apply: Any, error: type) -> int:
    doc: dict[str, Any] = {"report": report.to_dict(), "accepted": [], "written": None}
    code = 0 if report.ok else 1
    if report.ok and args.quiet:
        accepted = [f.id for f in report.optional]
        doc["accepted"] = accepted
        try:
            doc["written"] = apply(report, accepted, output=args.output).to_dict(args.model)
        except error as exc:
            doc["error"] = exc.to_dict()
            code = 1
    say(safe_json(doc, indent=2), file=sys.stdout)
    return code


def _ask(question: str, quiet: bool) -> bool:
    """Yes unless the answer is n/no; -q says yes; end of input takes the default (yes)."""
    out = sys.stdout
    if quiet:
        say(f"{question}Y", file=out, flush=True)
        return True
    while True:
        say(question, end="", file=out, flush=True)
        try:
            answer = input()
        except EOFError:
            say("Y", file=out)
            return True
        if not sys.stdin.isatty():
            say(answer, file=out)  # keep a transcript readable when answers are piped in
        answer = answer.strip().lower()
        if answer in YES:
            return True
        if answer in NO:
            return False
        say("Please answer y or n.", file=out)


def _advice(written: Any, model: str | None) -> str:
    from ftui.prepare import CLASSIFICATION, quote, show

    lines = []
    for note in written.notes:
        lines.append(f"\n- {note}")
    if written:
        names = " and ".join(f"`{p}`" for p in written)
        plural = "s" if len(written) > 1 else ""
        counts = f"{written.n_train:,} examples"
        if written.valid:
            counts = f"{written.n_train:,} training and {written.n_valid:,} validation examples"
        lines.append(f"\nWrote modified file{plural} to {names} ({counts})")
        lines.append("Feel free to take a look!")
        lines.append("\nNow use that file when fine-tuning:")
    else:
        lines.append("\nYou can use your file for fine-tuning:")
    lines.append(f"> {written.command(model)}")
    if written.valid and written.n_classes == 2 and written.positive_class is not None:
        lines.append(
            f"\n(The positive class for the metrics is {quote(written.positive_class)}; change"
            " --classification-positive-class if another label is the one to detect.)"
        )
    if written.separator:
        lines.append(
            "\nAfter you’ve fine-tuned a model, remember that your prompt has to end with the"
            f" indicator string `{show(written.separator)}` for the model to start generating"
            " completions, rather than continuing with the prompt."
        )
    if written.stop and written.task_type != CLASSIFICATION:
        lines.append(
            f'Make sure to include stop=["{show(written.stop)}"] so that the generated texts'
            " end at the expected place."
        )
    return "\n".join(lines)
