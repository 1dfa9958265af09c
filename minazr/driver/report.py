"""The paragraph `minazr train` prints at its end: what the run's own metrics say moved, what did not, and why.

A newcomer's first run (SmolLM2-135M, 10 steps) usually ends with every accuracy and valid-proposal rate at 0.00.
That is a working run, not a broken one, and this module says so from the run's numbers: how many proposals passed
validation and why the others failed, how many answers were read and why the others were not, and whether any
sample carried a non-zero advantage (with equal rewards in every group, GRPO has nothing to learn from).

    print(explain_run(run_dir))   # reads RUN_DIR/metrics.jsonl and RUN_DIR/samples.jsonl
"""

import json
import statistics
from collections import Counter
from pathlib import Path

NEXT_STEPS = (
    "Next: the 0.5B coder model, which proposes and answers far more often in format (about 1 min a step on a "
    "2-core CPU): "
    ".venv/bin/minazr setup --model qwen2.5-coder-0.5b-instruct && "
    ".venv/bin/minazr train --config configs/cpu_qwen2.5-coder-0.5b.yaml\n"
    "      score this run's checkpoint on the benchmarks: .venv/bin/minazr eval --model {run_dir} --limit 50\n"
    "      the curves: .venv/bin/tensorboard --logdir {run_dir}/tb   (docs/training.md lists every metric)"
)


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _rate(num: float, den: float) -> str:
    return f"{100 * num / den:.0f}%" if den else "n/a"


def _reasons(samples: list[dict], role: str, kind: str, top: int = 2) -> str:
    counts = Counter(s["outcome"].split(":", 1)[1].strip() for s in samples
                     if s["role"] == role and s["outcome"].startswith(kind + ":"))
    return ", ".join(f"'{reason}' ({n})" for reason, n in counts.most_common(top)) or "none"


def explain_run(run_dir: str | Path) -> str:
    """A short paragraph from RUN_DIR's metrics.jsonl and samples.jsonl, then the next commands to try."""
    run_dir = Path(run_dir)
    metrics = _read_jsonl(run_dir / "metrics.jsonl")
    samples = _read_jsonl(run_dir / "samples.jsonl")
    if not metrics:
        return f"{run_dir}: no steps were logged, so there is nothing to explain yet."
    lines = [_throughput(metrics)]
    proposals = [s for s in samples if s["role"] == "propose"]
    answers = [s for s in samples if s["role"] == "solve"]
    valid = sum(s["outcome"].startswith("valid") for s in proposals)
    correct = sum(s["outcome"] == "correct" for s in answers)
    unread = sum(s["outcome"].startswith("unparseable") for s in answers)
    lines.append(f"Proposals: {valid} of {len(proposals)} passed validation ({_rate(valid, len(proposals))}); "
                 f"the commonest rejections: {_reasons(samples, 'propose', 'invalid')}.")
    lines.append(f"Answers: {correct} of {len(answers)} correct ({_rate(correct, len(answers))}), "
                 f"{unread} unreadable ({_rate(unread, len(answers))}), mostly "
                 f"{_reasons(samples, 'solve', 'unparseable', top=1)}.")
    trained = sum(m.get("learner/samples", 0) for m in metrics)
    skipped = sum(m.get("learner/skipped_zero_advantage", 0) for m in metrics)
    updated = sum(1 for m in metrics if m.get("learner/samples", 0) > 0)
    if trained == 0:
        why = ("every proposal was invalid and every answer wrong or unreadable" if valid == 0 and correct == 0
               else "all proposals of a group, and all answers to a task, scored the same")
        lines.append(
            f"Learning: none of the {skipped} samples had a non-zero advantage, so the learner made no update: "
            f"{why}, and GRPO learns only from differences within a group.")
        if valid == 0:
            lines.append(
                "That is what a small model gives early in training: it rarely writes a program that passes validation or an "
                "answer in the <think>...</think><answer> format. The run itself worked: every step generated, "
                "judged in the sandbox, and published a weight version that every engine loaded.")
    else:
        first, last = _quarter(metrics, 0), _quarter(metrics, -1)
        lines.append(
            f"Learning: {trained} samples with a non-zero advantage trained the model on {updated} of "
            f"{len(metrics)} steps ({skipped} samples had none). First quarter -> last quarter of the run: "
            f"valid proposals {first['valid']:.2f} -> {last['valid']:.2f}, solver accuracy "
            f"{first['acc']:.2f} -> {last['acc']:.2f}, think rate {first['think']:.2f} -> {last['think']:.2f}.")
    return "\n".join(["What this run shows:"] + [f"  {line}" for line in lines]
                     + [NEXT_STEPS.format(run_dir=run_dir)])


def _throughput(metrics: list[dict]) -> str:
    steps = [m["step"] for m in metrics]
    tok_s = statistics.median(m.get("gen/tokens_per_s", 0.0) for m in metrics)
    step_s = statistics.median(m.get("time/step", 0.0) for m in metrics)
    versions = [m["version"] for m in metrics if "version" in m]
    published = f", weight versions {min(versions)} -> {max(versions)}" if versions else ""
    return (f"Steps {min(steps)}-{max(steps)}: median {step_s:.1f} s a step, {tok_s:.0f} generated tokens/s in "
            f"the loop{published}.")


def _quarter(metrics: list[dict], which: int) -> dict:
    """Means of the per-task rates over the first (which=0) or last (which=-1) quarter of the logged steps."""
    k = max(1, len(metrics) // 4)
    part = metrics[:k] if which == 0 else metrics[-k:]

    def mean(prefix):
        values = [v for m in part for key, v in m.items() if key.startswith(prefix)]
        return sum(values) / len(values) if values else 0.0

    return {"valid": mean("propose/valid_rate/"), "acc": mean("solve/accuracy/"), "think": mean("solve/think_rate/")}
