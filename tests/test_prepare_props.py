"""Property tests: `analyze`/`apply` never fail other than with PrepareError, whatever the input,
and the fast column helpers agree with plain Python definitions."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ftui.prepare import PrepareError, _text, analyze, apply
from ftui.records import check_record

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    database=None,  # nothing written into the work tree
    suppress_health_check=[HealthCheck.too_slow],
)
EXTENSIONS = [".jsonl", ".json", ".csv", ".tsv", ".txt", ".xlsx", ""]


def run_everything(path: Path) -> None:
    """analyze, then apply with every fix: only PrepareError may escape, and whatever is
    written must be valid fine-tuning JSONL."""
    try:
        report = analyze(path)
    except PrepareError as exc:
        assert exc.path == str(path)
        return
    json.dumps(report.to_dict())
    if not report.ok:
        return
    out_dir = path.parent / "out"
    out_dir.mkdir(exist_ok=True)
    written = apply(report, True, output=out_dir)
    for p in written:
        # JSONL lines end at "\n" only: str.splitlines() would also split inside strings that
        # hold U+0085 or U+2028, which JSON allows unescaped.
        lines = p.read_text(encoding="utf-8").split("\n")
        assert lines[-1] == ""
        rows = [json.loads(line) for line in lines[:-1]]
        assert rows and all(check_record(row) is None for row in rows)
    assert not [n for n in os.listdir(out_dir) if n.endswith(".tmp")]


@SETTINGS
@given(data=st.binary(max_size=400), ext=st.sampled_from(EXTENSIONS))
def test_arbitrary_bytes(data, ext):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"in{ext}"
        path.write_bytes(data)
        run_everything(path)


# Bytes that look like each format, so the deeper code is reached too.
texty = st.lists(
    st.sampled_from(list('ab ,;\t"\n\r{}[]:\\é\x00') + ["prompt", "completion", '"prompt"']),
    max_size=60,
).map("".join)


@SETTINGS
@given(text=texty, ext=st.sampled_from(EXTENSIONS))
def test_format_like_text(text, ext):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"in{ext}"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        run_everything(path)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
keys = st.sampled_from(["prompt", "completion", "Prompt", "COMPLETION", "id", "messages"])
records = st.lists(st.dictionaries(keys, json_values, max_size=4), min_size=1, max_size=25)


@SETTINGS
@given(rows=records, layout=st.sampled_from(["jsonl", "json"]))
@example(rows=[{"completion": "\x85", "prompt": None}], layout="jsonl")  # NEL inside a string
def test_arbitrary_records(rows, layout):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"in.{layout}"
        if layout == "jsonl":
            path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        else:
            path.write_text(json.dumps(rows), encoding="utf-8")
        run_everything(path)


labels = st.text(alphabet="abAB ->\n.", min_size=0, max_size=8)
pc_records = st.lists(
    st.fixed_dictionaries({"prompt": labels, "completion": labels}), min_size=1, max_size=40
)


@SETTINGS
@given(rows=pc_records)
def test_prompt_completion_records_always_prepare(rows):
    """Small alphabets make every check fire in every combination (prefixes that empty
    completions, classification, identical values, separators taken)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        run_everything(path)


chat_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "x"]), "content": json_values}
)


@SETTINGS
@given(rows=st.lists(st.fixed_dictionaries({"messages": st.lists(chat_message, max_size=3)})))
def test_chat_records(rows):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        run_everything(path)


cells = st.text(alphabet=st.sampled_from(list('ab ,"\n\té')), max_size=6)


@SETTINGS
@given(rows=st.lists(st.tuples(cells, cells), min_size=1, max_size=15))
def test_csv_values_and_lines_match_the_csv_module(rows):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.csv"
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["prompt", "completion"])
        writer.writerows(rows)
        path.write_text(buf.getvalue(), encoding="utf-8")
        reader = csv.reader(io.StringIO(buf.getvalue(), newline=""))
        next(reader)
        starts, expected = [], []
        start = reader.line_num + 1
        for row in reader:
            starts.append(start)
            expected.append(row)
            start = reader.line_num + 1
        try:
            report = analyze(path)
        except PrepareError:
            return
        missing = {i for i, (_, c) in enumerate(expected) if c == ""}
        if report.ok:
            state = report._state
            kept = [i for i in range(len(expected)) if i not in missing]
            assert list(state.locs) == [starts[i] for i in kept]
            assert state.prompts == [expected[i][0] for i in kept]
            assert state.completions == [expected[i][1] for i in kept]


# ------------------------------------------------------------------ the fast helpers

strings = st.lists(st.text(max_size=8), max_size=30)


@SETTINGS
@given(prompts=st.lists(st.sampled_from(["a", "b", "ab", ""]), max_size=40), data=st.data())
def test_duplicates_equal_the_plain_definition(prompts, data):
    completions = data.draw(
        st.lists(st.sampled_from(["x", "y"]), min_size=len(prompts), max_size=len(prompts))
    )
    seen, expected = set(), []
    for i, pair in enumerate(zip(prompts, completions, strict=True)):
        if pair in seen:
            expected.append(i)
        seen.add(pair)
    assert _text.duplicate_positions(prompts, completions) == expected


@SETTINGS
@given(values=strings)
def test_common_prefix_and_suffix(values):
    assert _text.common_prefix(values) == os.path.commonprefix(values)
    reversed_ = [v[::-1] for v in values]
    assert _text.common_suffix(values) == os.path.commonprefix(reversed_)[::-1]


@SETTINGS
@given(values=st.lists(st.text(), max_size=20))
def test_character_profile(values):
    prof = _text.profile(values, '"\n#')
    text = "".join(values)
    assert prof.upper == sum(c.isalpha() and c.isupper() for c in text)
    assert prof.lower == sum(c.isalpha() and c.islower() for c in text)
    assert prof.present == {c for c in '"\n#' if c in text}
    must_escape = {c for c in text if c < " " or c in '"\\' or "\ud800" <= c <= "\udfff"}
    assert prof.specials == must_escape


@SETTINGS
@given(values=st.lists(st.text(), max_size=20))
def test_json_bodies_equal_json_dumps(values):
    prof = _text.profile(values)
    bodies = _text.json_bodies(values, prof.specials)
    for v, body in zip(values, bodies, strict=True):
        assert json.loads(f'"{body}"') == v
        if not any("\ud800" <= c <= "\udfff" for c in v):
            assert f'"{body}"' == json.dumps(v, ensure_ascii=False)
        body.encode("utf-8")  # always writable
