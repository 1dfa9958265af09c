"""Learning curves and end-of-training figures of a run, from its metrics.jsonl and samples.jsonl.

    plot_curves(metrics, ["deduction", "abduction"], Path("learning_curves.png"))   # 12 panels, per task
    last_quarter(Path("runs/x/samples.jsonl"), think_opened=True)    # copy rate, think rate over the last quarter

The curves answer "did it learn, and what did it learn to do": proposals (valid, copied, new, trivial, learnable),
rewards of both roles, solver accuracy, whether the solver still reasons (think rate, reasoning length), and whether
completions fit their budget (truncation, length).
"""

import json
import math
from pathlib import Path

from minazr.selfplay.parsing import has_reasoning

# (title, [(metric key template, line style)], y limits or None); one line per task and key
PANELS = [
    ("valid-proposal rate", [("propose/valid_rate/{task}", "-")], (0, 1)),
    ("copy rate: copies / (valid + copies)", [("propose/copy_rate/{task}", "-")], (0, 1)),
    ("new tasks added to the buffer per step", [("propose/new_programs/{task}", "-")], None),
    ("trivial-task rate", [("propose/trivial_rate/{task}", "-")], (0, 1)),
    ("learnable share of valid proposals (0 < MC solve rate < 1)", [("propose/learnable/{task}", "-")], (0, 1)),
    ("proposer reward, mean", [("reward/propose/{task}", "-")], (-1, 1)),
    ("solver reward, mean", [("reward/solve/{task}", "-")], (-1, 1)),
    ("solver accuracy", [("solve/accuracy/{task}", "-")], (0, 1)),
    ("think rate: solver answers that reason in <think> first", [("solve/think_rate/{task}", "-")], (0, 1)),
    ("truncated at max_tokens (solid: solver, dashed: proposer)",
     [("solve/truncated/{task}", "-"), ("propose/truncated/{task}", "--")], (0, 1)),
    ("response length, tokens (solid: solver, dashed: proposer)",
     [("length/solve/{task}", "-"), ("length/propose/{task}", "--")], None),
    ("reasoning length, characters inside <think>", [("length/think_chars/{task}", "-")], None),
]


def plot_curves(metrics: list[dict], tasks: list[str], path: Path) -> None:
    """Every panel of PANELS, one colour per task: faint points per step, a line for the mean of the last 5."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 3, figsize=(16, 15), constrained_layout=True)
    colours = {task: f"C{i}" for i, task in enumerate(tasks)}
    for ax, (title, series, ylim) in zip(axes.flat, PANELS):
        for key, style in series:
            for task in tasks:
                pts = [(m["step"], m[key.format(task=task)]) for m in metrics if key.format(task=task) in m]
                if not pts:
                    continue
                xs, ys = zip(*pts)
                ax.plot(xs, ys, ".", alpha=0.3, color=colours[task])
                role = key.split("/")[0] if len(series) > 1 else ""
                ax.plot(xs, _smooth(ys), style, linewidth=2, color=colours[task], label=f"{role} {task}".strip())
        ax.set_title(title, fontsize=10)
        if ylim:
            ax.set_ylim(ylim[0] - 0.03, ylim[1] + 0.03)
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=7)
    fig.suptitle("per step (points) and mean of the last 5 steps (lines)", fontsize=11)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def last_quarter(samples_path: Path, think_opened: bool) -> dict:
    """Proposal and solver figures over the last quarter of the steps in samples.jsonl, pooled over tasks and per
    task: copy rate of the well-formed proposals (copies / (valid + copies)), think rate of solver answers (reasoning
    inside <think> before anything else), solver accuracy. Counts come with every rate."""
    rows = [json.loads(line) for line in Path(samples_path).read_text().splitlines() if line.strip()]
    steps = sorted({r["step"] for r in rows})
    if not steps:
        return {"steps": [], "all": {}, "per_task": {}}
    kept = steps[len(steps) - max(1, math.ceil(len(steps) / 4)):]
    rows = [r for r in rows if r["step"] >= kept[0]]
    tasks = sorted({r["task"] for r in rows})
    return {"steps": [kept[0], kept[-1]], "all": _figures(rows, think_opened),
            "per_task": {t: _figures([r for r in rows if r["task"] == t], think_opened) for t in tasks}}


def _figures(rows: list[dict], think_opened: bool) -> dict:
    props = [r for r in rows if r["role"] == "propose"]
    valid = sum(str(r["outcome"]).startswith("valid") for r in props)
    copies = sum(str(r["outcome"]).startswith("duplicate") for r in props)
    solves = [r for r in rows if r["role"] == "solve"]
    think = sum(has_reasoning(r["completion"], think_opened) for r in solves)
    correct = sum(r["outcome"] == "correct" for r in solves)
    return {"proposals": len(props), "valid": valid, "copies": copies,
            "copy_rate": copies / (valid + copies) if valid + copies else None,
            "solver_answers": len(solves), "think": think, "think_rate": think / len(solves) if solves else None,
            "correct": correct, "accuracy": correct / len(solves) if solves else None}


def _smooth(ys, window: int = 5) -> list[float]:
    return [sum(ys[max(0, i - window + 1):i + 1]) / len(ys[max(0, i - window + 1):i + 1]) for i in range(len(ys))]
