"""The split (docs/experiments.md) of base vs trained by whether the base model copied the prompt's format example.

    .venv/bin/python docs/experiments/qwen2.5-coder-0.5b-cpu/format_example_split.py runs/qwen_experiment

reads DIR/base/<benchmark>.jsonl and DIR/trained/<benchmark>.jsonl (written by `minazr experiment`; the gzipped
copies beside this script hold the same rows) and prints one markdown row per benchmark.
"""

import json
import sys
from pathlib import Path

from minazr.driver.experiment import paired_difference

# the example answers of the solver prompts' format lines (minazr/selfplay/prompts.py), as the extractor returns them
EXAMPLES = {"cruxeval-o": {"[1, 2]"}, "cruxeval-i": {"('abc', 3)", "['abc', 3]", "'abc', 3"}, "gsm8k": {"42.0"}}


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(out_dir: Path) -> None:
    print("| benchmark | answers equal to the example, base -> trained | items the base copied: correct, base -> "
          "trained | other items: correct, base -> trained | other items: difference, points [95% CI], p |")
    print("| --- | --- | --- | --- | --- |")
    for name, examples in EXAMPLES.items():
        base, trained = (load(out_dir / tag / f"{name}.jsonl") for tag in ("base", "trained"))
        copied = [str(b["extracted"]) in examples for b in base]
        split = {c: ([b for b, k in zip(base, copied) if k == c], [t for t, k in zip(trained, copied) if k == c])
                 for c in (True, False)}
        right = lambda rows: sum(r["correct"] for r in rows)  # noqa: E731
        d = paired_difference(*split[False])
        print(f"| {name} | {sum(copied)} -> {sum(str(t['extracted']) in examples for t in trained)} | "
              f"{right(split[True][0])} -> {right(split[True][1])} of {len(split[True][0])} | "
              f"{right(split[False][0])} -> {right(split[False][1])} of {len(split[False][0])} | "
              f"{100 * d['difference']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}], "
              f"p = {d['p_value']:.2g} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/qwen_experiment"))
