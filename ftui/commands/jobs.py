"""Job commands: ``ftui jobs``, ``follow``, ``wait``, ``results``, ``create``, ``cancel``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from ftui.commands._common import (
    add_json,
    add_profile,
    error,
    open_client,
    print_data,
    print_json,
    print_table,
    profile_flag,
    run,
    say,
    stamp,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("jobs", help="list fine-tuning jobs, newest first")
    add_profile(p)
    add_json(p)
    p.set_defaults(func=cmd_jobs)

    p = subparsers.add_parser(
        "follow", help="print a job's events until it ends (reconnects on its own)"
    )
    p.add_argument("job")
    add_profile(p)
    p.set_defaults(func=cmd_follow)

    p = subparsers.add_parser("wait", help="wait for a job to end; exit 0 only if it succeeded")
    p.add_argument("job")
    add_profile(p)
    add_json(p)
    p.set_defaults(func=cmd_wait)

    p = subparsers.add_parser("results", help="a finished job's results CSV")
    p.add_argument("job")
    p.add_argument("-o", "--output", metavar="FILE", help="write the CSV here (default: stdout)")
    add_profile(p)
    add_json(p)
    p.set_defaults(func=cmd_results)

    p = subparsers.add_parser(
        "create", help="create a fine-tuning job (uploads local files first) and follow it"
    )
    p.add_argument(
        "-t",
        "--training-file",
        "--training_file",
        required=True,
        metavar="FILE",
        help="a local JSONL file (uploaded) or a file id",
    )
    p.add_argument(
        "-v",
        "--validation-file",
        "--validation_file",
        metavar="FILE",
        help="a local JSONL file (uploaded) or a file id",
    )
    p.add_argument("-m", "--model", required=True, help="base or fine-tuned model")
    p.add_argument("--suffix", help="up to 40 characters added to the fine-tuned model's name")
    p.add_argument("--n-epochs", "--n_epochs", type=int, metavar="N")
    p.add_argument("--batch-size", "--batch_size", type=int, metavar="N")
    p.add_argument(
        "--learning-rate-multiplier", "--learning_rate_multiplier", type=float, metavar="X"
    )
    p.add_argument("--prompt-loss-weight", "--prompt_loss_weight", type=float, metavar="X")
    p.add_argument(
        "--compute-classification-metrics", "--compute_classification_metrics", action="store_true"
    )
    p.add_argument(
        "--classification-n-classes", "--classification_n_classes", type=int, metavar="N"
    )
    p.add_argument(
        "--classification-positive-class", "--classification_positive_class", metavar="LABEL"
    )
    p.add_argument(
        "--classification-betas", "--classification_betas", type=float, nargs="+", metavar="BETA"
    )
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--no-follow",
        "--no_follow",
        action="store_true",
        help="print the job id and return at once",
    )
    add_profile(p)
    add_json(p)
    p.set_defaults(func=cmd_create)

    p = subparsers.add_parser("cancel", help="cancel a job")
    p.add_argument("job")
    add_profile(p)
    add_json(p)
    p.set_defaults(func=cmd_cancel)


# --- jobs ----------------------------------------------------------------------------------------


def _print_jobs(jobs: list) -> None:
    print_table(
        ["ID", "STATUS", "MODEL", "FINE-TUNED MODEL", "CREATED"],
        [(j.id, j.status, j.model, j.fine_tuned_model or "", stamp(j.created_at)) for j in jobs],
    )


def cmd_jobs(args: argparse.Namespace) -> int:
    from ftui.client import APIConnectionError

    async def body(client) -> int:
        try:
            jobs = await client.jobs.list()
        except APIConnectionError as exc:
            cached = client.cache.list_jobs() if client.cache is not None else []
            if not cached:
                raise
            seen = client.cache.jobs_seen_at()
            say(
                f"ftui: cannot reach {client.base_url} ({exc}); showing the jobs cached at "
                f"{stamp(int(seen)) if seen else 'an earlier run'}",
                file=sys.stderr,
            )
            print_json(cached) if args.json else _print_jobs(cached)
            return 1
        print_json(jobs) if args.json else _print_jobs(jobs)
        return 0

    return run(args, body, max_retries=2)


# --- follow and wait -----------------------------------------------------------------------------


def _final_words(job: Any, args: argparse.Namespace) -> str:
    if job.state == "succeeded":
        return (
            f"\nJob complete! Status: succeeded 🎉\nTry out your fine-tuned model:\n\n"
            f"ftui complete {profile_flag(args)}-m {job.fine_tuned_model} -p <YOUR_PROMPT>\n"
        )
    if job.state == "failed":
        why = f": {job.error.message}" if job.error and job.error.message else ""
        return f"\nJob failed{why}. Its events above say what happened.\n"
    return f"\nJob {job.status}.\n"


async def _follow_and_report(client: Any, job_id: str, args: argparse.Namespace) -> Any:
    async for event in client.follow(job_id):
        say(f"[{stamp(event.created_at)}] {event.message}", flush=True)
    job = await client.jobs.retrieve(job_id)
    say(_final_words(job, args), flush=True)
    return job


def _interrupted(args: argparse.Namespace, job_id: str) -> int:
    """Ctrl-C while following: say where the job is and how to resume or cancel it."""

    async def status() -> str:
        client = await open_client(args, max_retries=0, timeout=5.0, on_retry=None)
        async with client:
            try:
                return (await client.jobs.retrieve(job_id)).status
            except Exception:  # noqa: BLE001 - best effort: fall back to what the cache knows
                cached = client.cache.get_job(job_id) if client.cache is not None else None
                return f"{cached.status} (as last seen)" if cached else "in an unknown state"

    try:
        state = asyncio.run(status())
    except (Exception, KeyboardInterrupt):  # noqa: BLE001
        state = "in an unknown state"
    flag = profile_flag(args)
    say(
        f"\nStream interrupted. Job is still {state}.\n"
        f"To resume the stream, run:\n\n  ftui follow {flag}{job_id}\n\n"
        f"To cancel your job, run:\n\n  ftui cancel {flag}{job_id}\n",
        flush=True,
    )
    return 130


def cmd_follow(args: argparse.Namespace) -> int:
    async def body(client) -> int:
        await _follow_and_report(client, args.job, args)
        return 0

    try:
        return run(args, body)
    except KeyboardInterrupt:
        return _interrupted(args, args.job)


def cmd_wait(args: argparse.Namespace) -> int:
    async def body(client) -> int:
        job = await client.wait(args.job)
        if args.json:
            print_json(job)
        else:
            model = f" ({job.fine_tuned_model})" if job.fine_tuned_model else ""
            say(f"{job.id}: {job.status}{model}")
        return 0 if job.succeeded else 1

    try:
        return run(args, body)
    except KeyboardInterrupt:
        return _interrupted(args, args.job)


# --- results, create, cancel ---------------------------------------------------------------------


def cmd_results(args: argparse.Namespace) -> int:
    async def body(client) -> int:
        if args.json:
            print_json([r.to_dict() for r in await client.jobs.results(args.job)])
            return 0
        file_id = await client.jobs.results_file(args.job)
        if args.output:
            path = await client.files.content(file_id, args.output)
            say(f"Wrote {path}", file=sys.stderr)
        else:
            content = await client.files.content(file_id)
            if sys.stdout.isatty():  # the file comes from the server: no raw escapes on screen
                print_data(content.decode("utf-8", "replace"), end="")
            else:
                sys.stdout.buffer.write(content)
            sys.stdout.flush()
        return 0

    return run(args, body)


async def _file_id(client: Any, value: str, args: argparse.Namespace) -> str:
    """A local path is uploaded (its id returned); anything else is taken as a file id."""
    if not os.path.isfile(value):
        return value
    f = await client.files.create(value)
    say(f"Uploaded file from {value}: {f.id}", file=sys.stderr if args.json else sys.stdout)
    return f.id


def cmd_create(args: argparse.Namespace) -> int:
    async def body(client) -> int:
        training = await _file_id(client, args.training_file, args)
        validation = (
            await _file_id(client, args.validation_file, args) if args.validation_file else None
        )
        job = await client.jobs.create(
            training,
            args.model,
            validation_file=validation,
            n_epochs=args.n_epochs,
            batch_size=args.batch_size,
            learning_rate_multiplier=args.learning_rate_multiplier,
            prompt_loss_weight=args.prompt_loss_weight,
            compute_classification_metrics=args.compute_classification_metrics or None,
            classification_n_classes=args.classification_n_classes,
            classification_positive_class=args.classification_positive_class,
            classification_betas=args.classification_betas,
            suffix=args.suffix,
            seed=args.seed,
        )
        if args.json:
            print_json(job)
            return 0
        say(f"Created fine-tune: {job.id}", flush=True)
        if args.no_follow:
            return 0
        print(
            "Streaming events until fine-tuning is complete...\n\n"
            "(Ctrl-C will interrupt the stream, but not cancel the fine-tune)",
            flush=True,
        )
        args.job = job.id
        await _follow_and_report(client, job.id, args)
        return 0

    try:
        return run(args, body)
    except KeyboardInterrupt:
        if getattr(args, "job", None):
            return _interrupted(args, args.job)
        error("interrupted before the job was created")
        return 130


def cmd_cancel(args: argparse.Namespace) -> int:
    async def body(client) -> int:
        job = await client.jobs.cancel(args.job)
        if args.json:
            print_json(job)
        else:
            say(f"{job.id}: {job.status}")
        return 0

    return run(args, body)
