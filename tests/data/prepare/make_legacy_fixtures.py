"""Writes the small inputs under legacy/ whose legacy outputs are kept beside them.

The `*_prepared*.jsonl` and `*.stdout` files next to each input were produced by the legacy tool,
`openai tools fine_tunes.prepare_data -f FILE -q` (openai==0.28.1, pandas 3.1.1), run in a
directory holding only the input. Re-run this script and the legacy tool to refresh them.
"""

import csv
import json
from pathlib import Path

HERE = Path(__file__).parent / "legacy"


def main() -> None:
    HERE.mkdir(exist_ok=True)
    # conditional generation: uppercase prompts with a long common prefix, completions with a
    # common prefix, one very long example, one empty completion
    with open(HERE / "upper_prefix.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["prompt", "completion"])
        for i in range(40):
            c = f"Answer: value {i} is {'odd' if i % 2 else 'even'}."
            if i == 7:
                c = ""
            if i == 11:
                c = "Answer: " + "long " * 2100
            w.writerow([f"QUESTION: WHAT IS THE PARITY OF {i}?", c])
    # classification: uppercase binary labels, prompts already end with " ->", duplicates
    with open(HERE / "labels.jsonl", "w", encoding="utf-8") as f:
        for i in range(30):
            label = "POSITIVE" if i % 3 else "NEGATIVE"
            rec = {"prompt": f"review {i % 25}: it was {'great' if i % 3 else 'bad'} ->"}
            rec["completion"] = label
            f.write(json.dumps(rec) + "\n")
    # open-ended generation from a text file
    with open(HERE / "open.txt", "w", encoding="utf-8") as f:
        for i in range(12):
            f.write(f"Line number {i} of a story about {'cats' if i % 2 else 'dogs'}.\n")
    # prompts share the suffix "?", completions share "." ; a JSON array document
    rows = [
        {"prompt": f"What is {i} plus {i}?", "completion": f" It is {2 * i}."} for i in range(20)
    ]
    (HERE / "suffixes.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
