"""The paragraph `minazr train` prints at its end: what the run's own metrics say moved, what did not, and why.

A newcomer's first run (SmolLM2-135M, 10 steps) usually ends with every accuracy and valid-proposal rate at 0.00.
That is a working run, not a broken one, and this module says so from the run's numbers (metrics.jsonl, one line
per step): how many proposals passed validation and why the others were rejected, how many answers were correct
or unreadable, and whether any sample carried a non-zero advantage (with equal rewards in every group, GRPO has
nothing to learn from). samples.jsonl, where it was written, adds why answers could not be read.

    print(explain_run(run_dir))
"""

import json
import statistics
from collections import Counter
from pathlib import Path

import yaml

QWEN = "qwen2.5-coder-0.5b-instruct"


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _rate(num: float, den: float) -> str:
    return f"{100 * num / den:.0f}%" if den else "n/a"


def _top(counts: Counter, n: int = 2) -> str:
    return ", ".join(f"'{reason}' ({count:g})" for reason, count in counts.most_common(n))


def _total(metrics: list[dict], prefix: str, times: str | None = None) -> float:
    """Sum over steps and tasks of `prefix<task>` (each times `times<task>` when given: a rate times a count)."""
    total = 0.0
    for m in metrics:
        for key, value in m.items():
            if key.startswith(prefix):
                total += value * (m.get(times + key[len(prefix):], 0) if times else 1)
    return total


def explain_run(run_dir: str | Path) -> str:
    """A short paragraph from RUN_DIR's logs, then the next commands to try."""
    run_dir = Path(run_dir)
    metrics = [m for m in _read_jsonl(run_dir / "metrics.jsonl") if m["step"] >= 0]  # not the canary before training
    if not metrics:
        return f"{run_dir}: no steps were logged, so there is nothing to explain yet."
    lines = [_throughput(metrics)]
    proposed = _total(metrics, "propose/n/")
    valid = round(_total(metrics, "propose/valid_rate/", "propose/n/"))
    rejected = Counter()
    for m in metrics:
        for key, count in m.items():
            if key.startswith("propose/reject/"):
                rejected[key.split("/", 3)[3]] += count
    reasons = f"; the commonest rejections: {_top(rejected)}" if rejected else ""
    lines.append(f"Proposals: {valid} of {proposed:.0f} passed validation ({_rate(valid, proposed)}){reasons}.")
    answered = _total(metrics, "solve/n/")
    correct = round(_total(metrics, "solve/accuracy/", "solve/n/"))
    unread = round(_total(metrics, "solve/unparseable/", "solve/n/"))
    lines.append(f"Answers: {correct} of {answered:.0f} correct ({_rate(correct, answered)}), {unread} unreadable "
                 f"({_rate(unread, answered)}){_unread_reasons(run_dir, unread)}.")
    nonzero = sum(m.get("learner/nonzero_advantage", m.get("learner/samples", 0)) for m in metrics)
    trained = sum(1 for m in metrics if m.get("learner/nonzero_advantage", m.get("learner/samples", 0)) > 0)
    if nonzero == 0:
        why = ("every proposal was invalid and every answer wrong or unreadable" if valid == 0 and correct == 0
               else "all proposals of a group, and all answers to a task, scored the same")
        lines.append(f"Learning: no sample had a non-zero advantage, so the policy gradient was zero on every step: "
                     f"{why}, and GRPO learns only from differences within a group.")
        if valid == 0 and proposed:
            lines.append("That is what a small model gives early in training: it rarely writes a program that "
                         "passes validation or an answer in the <think>...</think><answer> format. The run itself "
                         "worked: every step generated, judged in the sandbox, and published a weight version that "
                         "every engine loaded.")
    else:
        first, last = _quarter(metrics, 0), _quarter(metrics, -1)
        lines.append(
            f"Learning: {nonzero:.0f} samples had a non-zero advantage, on {trained} of {len(metrics)} steps. First "
            f"quarter -> last quarter of the run: valid proposals {first['valid']:.2f} -> {last['valid']:.2f}, "
            f"solver accuracy {first['acc']:.2f} -> {last['acc']:.2f}, think rate {first['think']:.2f} -> "
            f"{last['think']:.2f}.")
        lines.append(_moved(metrics))
    return "\n".join(["What this run shows:", *(f"  {line}" for line in lines), *_next_steps(run_dir)])


def _unread_reasons(run_dir: Path, unread: int) -> str:
    """Why answers could not be read, from samples.jsonl (written every train.sample_table_every steps)."""
    samples = [s for s in _read_jsonl(run_dir / "samples.jsonl")
               if s["role"] == "solve" and s["outcome"].startswith("unparseable:")]
    if not unread or not samples:
        return ""
    counts = Counter(s["outcome"].split(":", 1)[1].strip() for s in samples)
    steps = len({s["step"] for s in samples})
    return f"; in the {steps} logged step(s), mostly {_top(counts, 1)}"


def _next_steps(run_dir: Path) -> list[str]:
    config = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").exists() else {}
    steps = ["Next:"]
    if (config or {}).get("model", {}).get("name") != QWEN:
        steps.append("  the 0.5B coder model, which answers in the think format far more often (100 steps of "
                     "several minutes each on a 2-core CPU; resumable): "
                     f".venv/bin/minazr setup --model {QWEN} && "
                     ".venv/bin/minazr train --config configs/cpu_qwen2.5-coder-0.5b.yaml")
    steps.append(f"  score this run's checkpoint on the benchmarks: .venv/bin/minazr eval --model {run_dir} --limit 50")
    if (run_dir / "tb").is_dir():
        steps.append(f"  the curves: .venv/bin/tensorboard --logdir {run_dir / 'tb'}   (metrics: docs/training.md)")
    return steps


def _throughput(metrics: list[dict]) -> str:
    steps = [m["step"] for m in metrics]
    tok_s = statistics.median(m.get("gen/tokens_per_s", 0.0) for m in metrics)
    step_s = statistics.median(m.get("time/step", 0.0) for m in metrics)
    versions = [m["version"] for m in metrics if "version" in m]
    published = f", weight versions {min(versions)} -> {max(versions)}" if versions else ""
    return (f"Steps {min(steps)}-{max(steps)}: median {step_s:.1f} s a step, {tok_s:.0f} generated tokens/s in "
            f"the loop{published}.")


def _answer_counts(metrics: list[dict]) -> tuple[int, int, int]:
    """(answers, well-formed answers, correct answers) over these steps."""
    answered = round(_total(metrics, "solve/n/"))
    unread = round(_total(metrics, "solve/unparseable/", "solve/n/"))
    return answered, answered - unread, round(_total(metrics, "solve/accuracy/", "solve/n/"))


def _moved(metrics: list[dict]) -> str:
    """What moved from the first steps to the last: the well-formed answer rate (AZR's format reward separates
    well-formed from unreadable answers, so it is what a small model learns first) and the solver's accuracy, with
    counts. Three steps each side (a quarter of longer runs)."""
    k = max(1, min(len(metrics) // 2, max(3, len(metrics) // 4)))
    (n0, ok0, c0), (n1, ok1, c1) = _answer_counts(metrics[:k]), _answer_counts(metrics[-k:])
    if not n0 or not n1:
        return "What moved: no answers to compare."
    span = lambda part: f"steps {part[0]['step']}-{part[-1]['step']}"  # noqa: E731
    change = "rose" if ok1 / n1 > ok0 / n0 else "fell" if ok1 / n1 < ok0 / n0 else "stayed"
    return (f"What moved: well-formed answers (<think>...</think><answer>...</answer>, read and judged) {change} from "
            f"{ok0} of {n0} ({_rate(ok0, n0)}) in {span(metrics[:k])} to {ok1} of {n1} ({_rate(ok1, n1)}) in "
            f"{span(metrics[-k:])}; correct answers {c0} of {n0} -> {c1} of {n1}.")


def _quarter(metrics: list[dict], which: int) -> dict:
    """Means of the per-task rates over the first (which=0) or last (which=-1) quarter of the logged steps."""
    k = max(1, len(metrics) // 4)
    part = metrics[:k] if which == 0 else metrics[-k:]

    def mean(prefix):
        values = [v for m in part for key, v in m.items() if key.startswith(prefix)]
        return sum(values) / len(values) if values else 0.0

    return {"valid": mean("propose/valid_rate/"), "acc": mean("solve/accuracy/"), "think": mean("solve/think_rate/")}
