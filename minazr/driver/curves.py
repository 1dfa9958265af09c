"""Learning curves and end-of-training figures of a run, from its metrics.jsonl and samples.jsonl.

    plot_curves(metrics, ["deduction", "abduction"], Path("learning_curves.png"))   # PANELS, per task
    last_quarter(Path("runs/x/samples.jsonl"), think_opened=True)    # copy rate, think rate over the last quarter

The curves answer "did it learn, and what did it learn to do": proposals (valid, copied, new, trivial, learnable),
rewards of both roles, solver accuracy, whether there was anything to learn from (groups with zero reward variance,
where the solver's advantage mass went, how often the same buffer entries were solved), whether the solver still
reasons (think rate, reasoning length), whether completions fit their budget (truncation, length), and the canary:
accuracy on a fixed benchmark slice before training and every eval.every steps, and items gained minus lost.
"""

import json
from collections import Counter
import math
from pathlib import Path
from typing import NamedTuple

from minazr.selfplay.parsing import has_reasoning, reasoning_chars


class Panel(NamedTuple):
    title: str
    series: list[tuple[str, str]]  # (metric key template, line style); one line per task (or benchmark) and key
    ylim: tuple[float, float] | None = None
    per: str = "task"  # "task": templates take {task}; "bench": {bench}, the canary's benchmarks found in the metrics
    hline: float | None = None  # a reference line (0 for a difference)


# A key missing from the metrics (older runs log fewer) leaves its line out; a panel with no line stays empty.
PANELS = [
    # proposals
    Panel("valid-proposal rate", [("propose/valid_rate/{task}", "-")], (0, 1)),
    Panel("copy rate: copies / (valid + copies)", [("propose/copy_rate/{task}", "-")], (0, 1)),
    Panel("verbatim copies of a reference in the prompt / (valid + copies)",
          [("propose/verbatim_copy_rate/{task}", "-")], (0, 1)),
    Panel("trivial-task rate", [("propose/trivial_rate/{task}", "-")], (0, 1)),
    Panel("new tasks added to the buffer per step", [("propose/new_programs/{task}", "-")]),
    Panel("new tasks by MC solve rate (solid: 0<r<1, dashed: r=1, dotted: r=0)",
          [("propose/new_learnable/{task}", "-"), ("propose/new_solved_all/{task}", "--"),
           ("propose/new_solved_none/{task}", ":")]),
    Panel("learnable share of valid proposals (0 < MC solve rate < 1)", [("propose/learnable/{task}", "-")], (0, 1)),
    Panel("proposer reward, mean", [("reward/propose/{task}", "-")], (-1, 1)),
    # solver and the learning signal
    Panel("solver reward, mean", [("reward/solve/{task}", "-")], (-1, 1)),
    Panel("solver accuracy", [("solve/accuracy/{task}", "-")], (0, 1)),
    Panel("reward groups with zero variance (solid: solve, dashed: propose)",
          [("groups/flat/{task}/solve", "-"), ("groups/flat/{task}/propose", "--")], (0, 1)),
    Panel("solver's positive advantage share (solid: all-right groups, dashed: all-wrong)",
          [("adv_mass/solve_always/{task}", "-"), ("adv_mass/solve_never/{task}", "--")], (0, 1)),
    Panel("buffer entries solved (solid: distinct this step, dashed: most draws of one so far)",
          [("solve/distinct_prompts/{task}", "-"), ("solve/max_draws/{task}", "--")]),
    # completions
    Panel("think rate: solver answers that reason in <think> first", [("solve/think_rate/{task}", "-")], (0, 1)),
    Panel("truncated at max_tokens (solid: solver, dashed: proposer)",
          [("solve/truncated/{task}", "-"), ("propose/truncated/{task}", "--")], (0, 1)),
    Panel("response length, tokens (solid: solver, dashed: proposer)",
          [("length/solve/{task}", "-"), ("length/propose/{task}", "--")]),
    Panel("reasoning length, characters inside <think>, mean", [("length/think_chars/{task}", "-")]),
    Panel("reasoning length, characters inside <think> (solid: p50, dotted: p10, dashed: p90)",
          [("length/think_chars_p50/{task}", "-"), ("length/think_chars_p10/{task}", ":"),
           ("length/think_chars_p90/{task}", "--")]),
    # the canary (eval.every): one line per benchmark, step -1 is before training
    Panel("canary accuracy (step -1: before training)", [("eval/{bench}", "o-")], (0, 1), per="bench"),
    Panel("canary: items gained - lost vs before training", [("eval/net_vs_base/{bench}", "o-")], per="bench",
          hline=0.0),
]
COLUMNS = 4


def plot_curves(metrics: list[dict], tasks: list[str], path: Path) -> None:
    """Every panel of PANELS, one colour per task: faint points per step, a line for the mean of the last 5. Canary
    panels: one colour per benchmark, a point per canary, unsmoothed (canaries are few, each already an average)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = math.ceil(len(PANELS) / COLUMNS)
    fig, axes = plt.subplots(rows, COLUMNS, figsize=(5.2 * COLUMNS, 3.9 * rows), constrained_layout=True)
    names = {"task": tasks, "bench": canary_benchmarks(metrics)}
    for ax, panel in zip(axes.flat, PANELS):
        colours = {name: f"C{i}" for i, name in enumerate(names[panel.per])}
        labelled = set()  # one legend entry per colour; the title says which line style is which key
        for template, style in panel.series:
            for name in names[panel.per]:
                key = template.format(**{panel.per: name})
                pts = [(m["step"], m[key]) for m in metrics if key in m]
                if not pts:
                    continue
                xs, ys = zip(*pts)
                label = "_nolegend_" if name in labelled else name
                labelled.add(name)
                if panel.per == "bench":
                    ax.plot(xs, ys, style, linewidth=1.5, markersize=4, color=colours[name], label=label)
                    continue
                ax.plot(xs, ys, ".", alpha=0.3, color=colours[name])
                ax.plot(xs, _smooth(ys), style, linewidth=2, color=colours[name], label=label)
        ax.set_title(panel.title, fontsize=9)
        if panel.hline is not None:
            ax.axhline(panel.hline, color="grey", linewidth=0.8)
        if not labelled:
            ax.text(0.5, 0.5, "not in these metrics", ha="center", va="center", color="grey",
                    transform=ax.transAxes)
        if panel.ylim:
            ax.set_ylim(panel.ylim[0] - 0.03, panel.ylim[1] + 0.03)
        ax.set_xlabel("step")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(PANELS):]:
        ax.axis("off")
    fig.suptitle("per step (points) and mean of the last 5 steps (lines); canaries: one point each", fontsize=11)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def canary_benchmarks(metrics: list[dict]) -> list[str]:
    """The benchmarks the canary logged (every canary logs eval/format_rate/<bench>; other eval/ keys such as
    eval/canary_stop are not benchmarks)."""
    prefix = "eval/format_rate/"
    return sorted({k[len(prefix):] for m in metrics for k in m if k.startswith(prefix)})


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


def quarter_targets(samples_path: Path, metrics: list[dict], think_opened: bool) -> dict:
    """The figures experiment 3 is held to over the last quarter of the steps, per task: copy rate of the
    well-formed proposals, distinct solver prompts (and the steps the most-drawn one was drawn in), median reasoning
    length against the first quarter's, and the share of proposer groups with no reward variance
    (groups/flat/<task>/propose in the metrics)."""
    rows = [json.loads(line) for line in Path(samples_path).read_text().splitlines() if line.strip()]
    steps = sorted({r["step"] for r in rows})
    if not steps:
        return {}
    n = max(1, math.ceil(len(steps) / 4))
    first, last = steps[:n], steps[len(steps) - n:]
    out = {"first_steps": [first[0], first[-1]], "last_steps": [last[0], last[-1]], "per_task": {}}
    for task in sorted({r["task"] for r in rows}):
        mine = [r for r in rows if r["task"] == task]
        late = [r for r in mine if r["step"] >= last[0]]
        early = [r for r in mine if r["step"] <= first[-1]]
        prompts = Counter(p for _, p in {(r["step"], r["prompt"]) for r in late if r["role"] == "solve"})
        flat = [m[f"groups/flat/{task}/propose"] for m in metrics
                if last[0] <= m.get("step", -1) <= last[-1] and f"groups/flat/{task}/propose" in m]
        med = {name: _median([reasoning_chars(r["completion"], think_opened) for r in part if r["role"] == "solve"])
               for name, part in (("first", early), ("last", late))}
        out["per_task"][task] = {
            "copy_rate": _figures(late, think_opened)["copy_rate"],
            "distinct_solver_prompts": len(prompts), "most_drawn_prompt": max(prompts.values(), default=0),
            "reasoning_median_first": med["first"], "reasoning_median_last": med["last"],
            "reasoning_ratio": med["last"] / med["first"] if med["first"] else None,
            "flat_proposer_groups": sum(flat) / len(flat) if flat else None}
    return out


def _median(values: list[float]) -> float | None:
    values = sorted(values)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


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
