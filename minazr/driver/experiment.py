"""`minazr experiment`: train, evaluate the base model and the final checkpoint, plot the learning curves, report.

    minazr setup --model qwen2.5-coder-0.5b-instruct
    minazr experiment --config configs/cpu_qwen2.5-coder-0.5b.yaml --out runs/experiment

Every phase can be interrupted and the command run again: training resumes from the run's latest checkpoint
(`run.out_dir`), a model whose evaluation is complete (every benchmark at its full size) is not evaluated again.
Writes, in OUT:
  base/, trained/              eval.json + <benchmark>.jsonl of the base model and of the final checkpoint
  learning_curves.png          valid-proposal rate, learnable fraction, solver accuracy per task, response length
  results.json, results.md     accuracies with 95% Wilson intervals, paired differences, wall times, commands
  timings.json                 wall time of every phase, one record per (possibly resumed) segment
"""

import json
import math
from contextlib import contextmanager
import shlex
import time
from pathlib import Path

from minazr.driver import checkpoint
from minazr.driver.config import Config
from minazr.driver.curves import last_quarter, plot_curves, quarter_targets
from minazr.eval.evaluate import load_benchmarks, resolve_eval_model, run_eval, wilson


def run_experiment(cfg: Config, out: str, names: list[str], limit: int | None, data_dir: str | None,
                   argv: list[str]) -> dict:
    out_dir, run_dir = Path(out), Path(cfg.run.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    loaded = load_benchmarks(names, data_dir, limit)  # bad data fails before hours of training
    sizes = {name: len(items) for name, (_, items) in loaded.items()}
    _record(out_dir, "command", 0.0, {"argv": argv})

    done_step = _trained_steps(run_dir)
    if done_step < cfg.train.steps:
        from minazr.driver.train import run_training

        print(f"minazr experiment: training {run_dir} (steps {done_step}..{cfg.train.steps - 1})", flush=True)
        with _timed(out_dir, "train", {"from_step": done_step, "to_step": cfg.train.steps}):
            run_training(cfg, resume=str(run_dir) if done_step else None)
    else:
        print(f"minazr experiment: {run_dir} already trained for {done_step} steps", flush=True)

    for tag, spec in (("base", cfg.model.name), ("trained", str(run_dir))):
        stamp = {"model": spec, "weights": str(resolve_eval_model(spec)), "items": sizes,
                 "max_tokens": cfg.eval.max_tokens, "prompt_template": cfg.selfplay.prompt_template}
        if _complete(out_dir / tag, sizes, stamp):
            print(f"minazr experiment: {tag} evaluation already complete in {out_dir / tag}", flush=True)
            continue
        (out_dir / tag / STAMP).unlink(missing_ok=True)
        with _timed(out_dir, f"eval_{tag}", {"model": spec}):
            run_eval(cfg, [spec], names, limit, data_dir, str(out_dir / tag))
        (out_dir / tag / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")

    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    plot_curves(metrics, cfg.selfplay.tasks, out_dir / "learning_curves.png")
    results = summarize(out_dir, metrics, names, cfg)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "results.md").write_text(report_markdown(results) + "\n")
    print(report_markdown(results))
    print(f"minazr experiment: wrote {out_dir}/results.md, results.json, learning_curves.png")
    return results


def _trained_steps(run_dir: Path) -> int:
    ckpt = checkpoint.latest(run_dir)
    return checkpoint.load_driver_state(ckpt)[0] if ckpt else 0


STAMP = "experiment_stamp.json"  # which weights, items and settings an evaluation directory holds


def _complete(eval_dir: Path, sizes: dict[str, int], stamp: dict) -> bool:
    """True if `eval_dir` holds a finished evaluation of these weights, items and settings (and no other)."""
    try:
        summary = json.loads((eval_dir / "eval.json").read_text())
        same = json.loads((eval_dir / STAMP).read_text()) == stamp
    except (OSError, ValueError):
        return False
    return same and all(summary.get(name, {}).get("n") == n for name, n in sizes.items())


@contextmanager
def _timed(out_dir: Path, phase: str, extra: dict):
    """Record the wall time of a phase, also when it is interrupted (completed: false), in OUT/timings.json."""
    t0, completed = time.time(), False
    try:
        yield
        completed = True
    finally:
        _record(out_dir, phase, time.time() - t0, {**extra, "completed": completed})


def _record(out_dir: Path, phase: str, seconds: float, extra: dict) -> None:
    with (out_dir / "timings.json").open("a") as fh:  # JSON lines despite the name: one record per segment
        fh.write(json.dumps({"phase": phase, "seconds": round(seconds, 1), "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                             **extra}) + "\n")


def _timings(out_dir: Path) -> list[dict]:
    path = out_dir / "timings.json"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


# ---------------------------------------------------------------- statistics


def paired_difference(base_rows: list[dict], trained_rows: list[dict]) -> dict:
    """Trained minus base accuracy on the same items: Newcombe's score interval for paired proportions (his method
    10, sane with few discordant items, unlike the Wald interval) and the exact two-sided McNemar p-value."""
    right = {r["id"]: r["correct"] for r in base_rows}
    pairs = [(bool(right[r["id"]]), bool(r["correct"])) for r in trained_rows if r["id"] in right]
    n = len(pairs)
    both = sum(1 for b, t in pairs if b and t)
    gained = sum(1 for b, t in pairs if t and not b)
    lost = sum(1 for b, t in pairs if b and not t)
    neither = n - both - gained - lost
    if n == 0:
        return {"n": 0, "difference": 0.0, "ci95": [0.0, 0.0], "gained": 0, "lost": 0, "p_value": 1.0}
    p_trained, p_base = (both + gained) / n, (both + lost) / n
    l1, u1 = wilson(both + gained, n)
    l2, u2 = wilson(both + lost, n)
    denom = (both + gained) * (lost + neither) * (both + lost) * (gained + neither)
    cross = both * neither - gained * lost
    phi = 0.0 if denom == 0 else (max(cross - n / 2, 0) if cross > 0 else cross) / math.sqrt(denom)
    d = p_trained - p_base
    below = math.sqrt(max(0.0, (p_trained - l1) ** 2 - 2 * phi * (p_trained - l1) * (u2 - p_base) + (u2 - p_base) ** 2))
    above = math.sqrt(max(0.0, (u1 - p_trained) ** 2 - 2 * phi * (u1 - p_trained) * (p_base - l2) + (p_base - l2) ** 2))
    return {"n": n, "difference": d, "ci95": [max(-1.0, d - below), min(1.0, d + above)], "gained": gained,
            "lost": lost, "p_value": mcnemar_exact(gained, lost)}


def mcnemar_exact(gained: int, lost: int) -> float:
    """Two-sided exact McNemar test: P(a split at least this uneven) under Binomial(gained + lost, 1/2)."""
    m, k = gained + lost, min(gained, lost)
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(k + 1)) / 2 ** m
    return min(1.0, 2 * tail)


def summarize(out_dir: Path, metrics: list[dict], names: list[str], cfg: Config) -> dict:
    evals = {tag: json.loads((out_dir / tag / "eval.json").read_text()) for tag in ("base", "trained")}
    benches = {}
    for name in names:
        rows = {tag: [json.loads(x) for x in (out_dir / tag / f"{name}.jsonl").read_text().splitlines() if x]
                for tag in evals}
        diff = paired_difference(rows["base"], rows["trained"])
        base, trained = evals["base"][name], evals["trained"][name]
        benches[name] = {"base": base, "trained": trained, "paired_difference": diff,
                         "beats_base_beyond_ci": trained["ci95"][0] > base["ci95"][1],
                         "paired_gain_significant": diff["ci95"][0] > 0 and diff["p_value"] < 0.05}
    timings = _timings(out_dir)
    # training: every segment counts (an interrupted one cost its time too); evaluation: the one that is reported
    seconds = {"train": sum(t["seconds"] for t in timings if t["phase"] == "train")}
    for phase in ("eval_base", "eval_trained"):
        done = [t["seconds"] for t in timings if t["phase"] == phase and t.get("completed", True)]
        seconds[phase] = done[-1] if done else 0.0
    metrics = [m for m in metrics if m.get("step", 0) >= 0]  # training steps: not the canary before training (-1)
    step_s = [m["time/step"] for m in metrics if "time/step" in m]
    samples = Path(cfg.run.out_dir) / "samples.jsonl"
    think_opened = cfg.selfplay.prompt_template == "r1" or cfg.selfplay.open_think
    return {"model": cfg.model.name, "run_dir": cfg.run.out_dir, "steps": len(step_s), "benchmarks": benches,
            "wall_s": seconds, "train_step_s_total": sum(step_s), "train_step_s_mean": sum(step_s) / max(1, len(step_s)),
            "loop": loop_figures(metrics),
            "last_quarter": last_quarter(samples, think_opened) if samples.is_file() else None,
            "targets": quarter_targets(samples, metrics, think_opened) if samples.is_file() else None,
            "commands": [shlex.join(t["argv"]) for t in timings if t["phase"] == "command"]}


def loop_figures(metrics: list[dict]) -> dict:
    """The training loop's own speed: steps per hour (from the summed step times), in-loop generation tokens/s
    (mean over steps), and the learner's share of the step time."""
    step_s = sum(m.get("time/step", 0.0) for m in metrics)
    learner_s = sum(m.get("time/learner_update", 0.0) for m in metrics)
    tps = [m["gen/tokens_per_s"] for m in metrics if "gen/tokens_per_s" in m]
    return {"steps_per_hour": 3600 * len(metrics) / step_s if step_s else None,
            "gen_tokens_per_s": sum(tps) / len(tps) if tps else None,
            "learner_share": learner_s / step_s if step_s else None}


def report_markdown(results: dict) -> str:
    lines = [f"Model `{results['model']}`, {results['steps']} self-play steps (`{results['run_dir']}`).", "",
             "| benchmark | n | base | trained | trained - base (paired 95% CI) | items gained / lost | McNemar p |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, b in results["benchmarks"].items():
        def cell(s):
            return f"{100 * s['accuracy']:.1f}% [{100 * s['ci95'][0]:.1f}, {100 * s['ci95'][1]:.1f}]"
        d = b["paired_difference"]
        lines.append(f"| {name} | {b['base']['n']} | {cell(b['base'])} | {cell(b['trained'])} | "
                     f"{100 * d['difference']:+.1f} pts [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}] | "
                     f"{d['gained']} / {d['lost']} | {d['p_value']:.3g} |")
    w = results["wall_s"]
    lines += ["", f"Wall time: {results['steps']} training steps {_hms(results['train_step_s_total'])} (mean "
                  f"{results['train_step_s_mean']:.0f} s; training segments timed by `minazr experiment`, with "
                  f"start-up and seeding: {_phase_time(w['train'])}), evaluation base "
                  f"{_phase_time(w['eval_base'])}, trained {_phase_time(w['eval_trained'])}."]
    loop = results.get("loop") or {}
    if loop.get("steps_per_hour"):
        tps = "n/a" if loop.get("gen_tokens_per_s") is None else f"{loop['gen_tokens_per_s']:.0f}"
        lines += ["", f"Training loop: {loop['steps_per_hour']:.1f} steps per hour, in-loop generation {tps} "
                      f"tokens/s, learner {100 * loop['learner_share']:.0f}% of the step time."]
    quarter = results.get("last_quarter") or {}
    if quarter.get("all"):
        q = quarter["all"]
        rate = (lambda x: "n/a" if x is None else f"{100 * x:.1f}%")
        lines += ["", f"Last quarter of training (steps {quarter['steps'][0]}-{quarter['steps'][1]}): copy rate "
                      f"{rate(q['copy_rate'])} ({q['copies']} copies, {q['valid']} valid of {q['proposals']} "
                      f"proposals), think rate {rate(q['think_rate'])} ({q['think']} of {q['solver_answers']} solver "
                      f"answers), solver accuracy {rate(q['accuracy'])}."]
    targets = results.get("targets") or {}
    if targets.get("per_task"):
        pct = (lambda x: "n/a" if x is None else f"{100 * x:.0f}%")
        num = (lambda x, f="{:.0f}": "n/a" if x is None else f.format(x))
        lines += ["", f"Last quarter (steps {targets['last_steps'][0]}-{targets['last_steps'][1]}) against the first "
                      f"(steps {targets['first_steps'][0]}-{targets['first_steps'][1]}):", "",
                  "| task | copies among well-formed proposals | distinct solver prompts (most drawn) | median "
                  "reasoning, chars: first -> last (ratio) | flat proposer groups |", "| --- | --- | --- | --- | --- |"]
        for task, t in targets["per_task"].items():
            lines.append(f"| {task} | {pct(t['copy_rate'])} | {t['distinct_solver_prompts']} "
                         f"({t['most_drawn_prompt']}x) | {num(t['reasoning_median_first'])} -> "
                         f"{num(t['reasoning_median_last'])} ({num(t['reasoning_ratio'], '{:.2f}')}x) | "
                         f"{pct(t['flat_proposer_groups'])} |")
    return "\n".join(lines)


def _phase_time(seconds: float) -> str:
    """A phase's wall time in this report's folder; none recorded means its work was already there (trained or
    evaluated for another report, copied in, or a run killed before its timing record)."""
    return _hms(seconds) if seconds else "not timed here (reused)"


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600} h {s % 3600 // 60:02d} min" if s >= 3600 else f"{s // 60} min {s % 60:02d} s"
