"""`ftui prepare-data`: prompting, -q, --json, -o, exit codes, the advice printed."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ftui.cli import main


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def gen_rows(n: int = 20) -> list[dict]:
    verbs, answers = ["Read", "Write", "Sum"], ["yes", "no", "ok"]
    return [
        {"prompt": f"{verbs[i % 3]} {i}", "completion": f"{answers[i % 3]} {i}" + ".!"[i % 2]}
        for i in range(n)
    ]


def run(args: list[str], monkeypatch, capsys, stdin: str | None = None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(["prepare-data", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_quiet_accepts_everything_and_prints_the_ftui_command(tmp_path, monkeypatch, capsys):
    src = write_jsonl(tmp_path / "d.jsonl", gen_rows())
    code, out, _ = run([str(src), "-q"], monkeypatch, capsys)
    assert code == 0
    assert "- [Recommended] Add a suffix separator ` ->` to all prompts [Y/n]: Y" in out
    assert f"> ftui create -t {tmp_path / 'd_prepared.jsonl'}" in out
    assert "indicator string ` ->`" in out
    assert 'stop=["\\n"]' in out
    rows = read(tmp_path / "d_prepared.jsonl")
    assert rows[0] == {"prompt": "Read 0 ->", "completion": " yes 0.\n"}


ANSWERS = [
    # stdin, separator added?, ending added?, space added?
    ("n\nno\nN\n", False, False, False),
    ("\ny\nyes\n", True, True, True),
    ("maybe\nn\n", False, True, True),  # an unclear answer is asked again; EOF means yes
    ("", True, True, True),
]


@pytest.mark.parametrize("stdin,sep,ending,space", ANSWERS)
def test_interactive_answers(tmp_path, monkeypatch, capsys, stdin, sep, ending, space):
    src = write_jsonl(tmp_path / "d.jsonl", gen_rows())
    code, out, _ = run([str(src)], monkeypatch, capsys, stdin=stdin)
    assert code == 0
    if not (sep or ending or space):
        assert "Aborting" not in out and not (tmp_path / "d_prepared.jsonl").exists()
        assert f"> ftui create -t {src}" in out
        return
    first = read(tmp_path / "d_prepared.jsonl")[0]
    assert first["prompt"].endswith(" ->") == sep
    assert first["completion"].endswith("\n") == ending
    assert first["completion"].startswith(" ") == space
    if stdin.startswith("maybe"):
        assert "Please answer y or n." in out


def test_declining_to_proceed_writes_nothing(tmp_path, monkeypatch, capsys):
    src = tmp_path / "d.csv"
    src.write_text("prompt,completion\n" + "".join(f"q{i} ->, a{i}\n" for i in range(5)))
    code, out, _ = run([str(src)], monkeypatch, capsys, stdin="n\nn\n")
    assert code == 0
    assert "- [Necessary] Convert CSV to JSONL" in out
    assert "Aborting... did not write the file" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv"]


def test_classification_split_and_flags(tmp_path, monkeypatch, capsys):
    rows = [{"prompt": f"text {i}", "completion": "spam" if i % 4 else "ham"} for i in range(40)]
    src = write_jsonl(tmp_path / "c.jsonl", rows)
    code, out, _ = run([str(src), "-q", "-m", "ada"], monkeypatch, capsys)
    assert code == 0
    train, valid = tmp_path / "c_prepared_train.jsonl", tmp_path / "c_prepared_valid.jsonl"
    assert (len(read(train)), len(read(valid))) == (32, 8)
    assert (
        f"> ftui create -t {train} -v {valid} -m ada --compute-classification-metrics"
        ' --classification-positive-class " spam"'
    ) in out


def test_output_option(tmp_path, monkeypatch, capsys):
    src = write_jsonl(tmp_path / "d.jsonl", gen_rows())
    target = tmp_path / "elsewhere" / "train set.jsonl"
    target.parent.mkdir()
    code, out, _ = run([str(src), "-q", "-o", str(target)], monkeypatch, capsys)
    assert code == 0 and target.exists()
    assert f'> ftui create -t "{target}"' in out


def test_unreadable_input_exits_1_naming_file_and_line(tmp_path, monkeypatch, capsys):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a",\n')
    code, _, err = run([str(src), "-q"], monkeypatch, capsys)
    assert code == 1
    assert str(src) in err and "line 2, column 16" in err


def test_report_error_exits_1(tmp_path, monkeypatch, capsys):
    src = write_jsonl(tmp_path / "d.jsonl", [{"question": "a", "answer": "b"}])
    code, out, err = run([str(src), "-q"], monkeypatch, capsys)
    assert code == 1
    assert "ERROR in missing_prompt check" in err
    assert "[Recommended]" not in out


def test_json_report_for_scripts(tmp_path, monkeypatch, capsys):
    src = write_jsonl(tmp_path / "d.jsonl", gen_rows())
    code, out, _ = run([str(src), "--json"], monkeypatch, capsys)
    doc = json.loads(out)
    assert code == 0 and doc["written"] is None and doc["accepted"] == []
    assert [f["id"] for f in doc["report"]["findings"] if f["kind"] == "optional"] == [
        "separator",
        "ending",
        "leading_space",
    ]
    assert not (tmp_path / "d_prepared.jsonl").exists()

    code, out, _ = run([str(src), "--json", "-q"], monkeypatch, capsys)
    doc = json.loads(out)
    assert code == 0
    assert doc["written"]["written"] == [str(tmp_path / "d_prepared.jsonl")]
    assert doc["written"]["command"] == f"ftui create -t {tmp_path / 'd_prepared.jsonl'}"
    assert doc["written"]["separator"] == " ->" and doc["written"]["stop"] == "\n"


def test_json_error(tmp_path, monkeypatch, capsys):
    src = tmp_path / "bad.csv"
    src.write_text("prompt,completion\na,b,c\n")
    code, out, _ = run([str(src), "--json"], monkeypatch, capsys)
    doc = json.loads(out)
    assert code == 1
    assert doc["error"]["path"] == str(src)
    assert (doc["error"]["line"], doc["error"]["column"]) == (2, 5)
