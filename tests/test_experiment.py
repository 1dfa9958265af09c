"""The experiment report's pure parts: paired differences, completeness of an evaluation, the markdown report and
the learning-curve plot (from made-up metrics; the end-to-end command is in test_integration_train)."""

import json
import struct
from pathlib import Path

import pytest

from minazr.driver.curves import PANELS, canary_benchmarks, last_quarter, quarter_targets
from minazr.driver.experiment import (STAMP, _complete, loop_figures, mcnemar_exact, paired_difference, plot_curves,
                                     report_markdown)


def rows(correct: list[bool]) -> list[dict]:
    return [{"id": f"item_{i}", "correct": c} for i, c in enumerate(correct)]


def test_paired_difference_counts_flips_both_ways():
    base = rows([True, True, False, False, False, True])
    trained = rows([True, False, True, True, False, True])
    d = paired_difference(base, trained)
    assert (d["n"], d["gained"], d["lost"]) == (6, 2, 1)
    assert d["difference"] == pytest.approx(1 / 6)
    assert d["ci95"][0] < d["difference"] < d["ci95"][1]


def test_paired_difference_identical_models_has_zero_width():
    same = rows([True, False, True])
    d = paired_difference(same, same)
    assert (d["difference"], d["gained"], d["lost"], d["p_value"]) == (0.0, 0, 0, 1.0)
    assert d["ci95"][0] < 0 < d["ci95"][1]  # three items cannot rule out a difference


def test_a_large_consistent_gain_is_significant_and_a_small_one_is_not():
    base = rows([False] * 400 + [True] * 400)
    big = rows([True] * 80 + [False] * 320 + [True] * 400)   # 80 gained, 0 lost
    small = rows([True] * 6 + [False] * 394 + [False] * 4 + [True] * 396)  # 6 gained, 4 lost
    few = rows([True] * 4 + [False] * 396 + [True] * 400)  # 4 gained, 0 lost: Wald would call it significant
    assert paired_difference(base, big)["ci95"][0] > 0 and paired_difference(base, big)["p_value"] < 1e-20
    for trained in (small, few):
        d = paired_difference(base, trained)
        assert d["ci95"][0] < 0 < d["ci95"][1] and d["p_value"] > 0.05


def test_mcnemar_exact_matches_the_binomial():
    assert mcnemar_exact(4, 0) == 0.125
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(10, 2) == pytest.approx(2 * (1 + 12 + 66) / 4096)


def test_complete_requires_the_same_weights_settings_and_every_item(tmp_path):
    stamp = {"model": "runs/x", "weights": "runs/x/checkpoints/step_000030/model", "items": {"gsm8k": 1319}}
    (tmp_path / "eval.json").write_text(json.dumps({"gsm8k": {"n": 1319}, "cruxeval-o": {"n": 100}}))
    assert not _complete(tmp_path, {"gsm8k": 1319}, stamp)  # no stamp: from an unknown run
    (tmp_path / STAMP).write_text(json.dumps(stamp))
    assert _complete(tmp_path, {"gsm8k": 1319}, stamp)
    later = {**stamp, "weights": "runs/x/checkpoints/step_000040/model"}
    assert not _complete(tmp_path, {"gsm8k": 1319}, later)  # trained further since: evaluate again
    assert not _complete(tmp_path, {"gsm8k": 1319, "cruxeval-o": 800}, stamp)
    assert not _complete(tmp_path / "missing", {"gsm8k": 1319}, stamp)


def test_last_quarter_pools_the_last_quarter_of_the_steps(tmp_path):
    rows = []
    for step in range(8):  # the last quarter: steps 6 and 7
        late = step >= 6
        rows += [{"step": step, "task": "deduction", "role": "propose", "outcome": o, "completion": ""}
                 for o in (["valid", "valid: no learnability (x)", "duplicate: a reference", "invalid: trivial: y"]
                           if late else ["duplicate: a reference"] * 4)]
        rows += [{"step": step, "task": "abduction", "role": "solve", "outcome": o, "completion": c}
                 for o, c in ([("correct", "steps</think><answer>1</answer>"), ("wrong", "<answer>2</answer>")]
                              if late else [("wrong", "<answer>2</answer>")] * 2)]
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    q = last_quarter(path, think_opened=True)
    assert q["steps"] == [6, 7]
    assert q["all"]["copies"] == 2 and q["all"]["valid"] == 4 and q["all"]["copy_rate"] == pytest.approx(1 / 3)
    assert q["all"]["think"] == 2 and q["all"]["solver_answers"] == 4 and q["all"]["think_rate"] == 0.5
    assert q["per_task"]["abduction"]["accuracy"] == 0.5 and q["per_task"]["deduction"]["think_rate"] is None
    assert last_quarter(path, think_opened=False)["all"]["think"] == 0  # no <think> opened: no reasoning counted


def test_quarter_targets_read_copies_prompts_reasoning_and_flat_groups(tmp_path):
    rows, metrics = [], []
    for step in range(8):  # first quarter: steps 0-1; last: 6-7
        late = step >= 6
        rows += [{"step": step, "task": "deduction", "role": "propose", "outcome": o, "completion": "", "prompt": "p"}
                 for o in (["valid", "duplicate: x", "invalid: y"] if late else ["duplicate: x"] * 3)]
        think = "w" * (40 if late else 100)
        rows += [{"step": step, "task": "deduction", "role": "solve", "outcome": "correct", "prompt": f"s{step % 3}",
                  "completion": think + "</think><answer>1</answer>"}]
        metrics.append({"step": step, "groups/flat/deduction/propose": 1.0 if step == 7 else 0.0})
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    t = quarter_targets(path, metrics, think_opened=True)
    d = t["per_task"]["deduction"]
    assert t["last_steps"] == [6, 7] and t["first_steps"] == [0, 1]
    assert d["copy_rate"] == 0.5 and d["distinct_solver_prompts"] == 2 and d["most_drawn_prompt"] == 1
    assert d["reasoning_median_first"] == 100 and d["reasoning_median_last"] == 40 and d["reasoning_ratio"] == 0.4
    assert d["flat_proposer_groups"] == 0.5
    text = report_markdown({"model": "m", "run_dir": "r", "steps": 8, "train_step_s_mean": 1.0, "train_step_s_total": 8,
                            "wall_s": {"train": 9.0, "eval_base": 1.0, "eval_trained": 1.0}, "benchmarks": {},
                            "targets": t})
    assert "| deduction | 50% | 2 (1x) | 100 -> 40 (0.40x) | 50% |" in text


def test_loop_figures_come_from_the_step_times():
    metrics = [{"time/step": 300.0, "time/learner_update": 225.0, "gen/tokens_per_s": 100.0},
               {"time/step": 300.0, "time/learner_update": 225.0, "gen/tokens_per_s": 140.0}]
    assert loop_figures(metrics) == {"steps_per_hour": 12.0, "gen_tokens_per_s": 120.0, "learner_share": 0.75}


def test_report_names_both_models_and_the_difference():
    s = lambda acc: {"accuracy": acc, "n": 800, "ci95": [acc - 0.03, acc + 0.03]}
    results = {"model": "m", "run_dir": "runs/x", "steps": 30, "train_step_s_mean": 240.0,
               "train_step_s_total": 7200.0,
               "wall_s": {"train": 7300.0, "eval_base": 1500.0, "eval_trained": 1490.0},
               "benchmarks": {"cruxeval-o": {"base": s(0.25), "trained": s(0.31),
                                             "paired_difference": {"difference": 0.06, "ci95": [0.03, 0.09],
                                                                   "gained": 70, "lost": 22, "p_value": 4e-7}}}}
    text = report_markdown(results)
    assert "| cruxeval-o | 800 | 25.0% [22.0, 28.0] | 31.0% [28.0, 34.0] | +6.0 pts [+3.0, +9.0] | 70 / 22 | 4e-07 |" in text
    assert "30 training steps 2 h 00 min (mean 240 s" in text and "start-up and seeding: 2 h 01 min" in text
    assert "30 self-play steps" in text
    results["wall_s"]["eval_base"] = 0.0  # the base evaluation's files were copied in: no timing record
    assert "evaluation base not timed here (reused), trained 24 min 50 s" in report_markdown(results)
    results["loop"] = {"steps_per_hour": 12.0, "gen_tokens_per_s": 120.0, "learner_share": 0.75}
    results["last_quarter"] = {"steps": [23, 30], "all": {"copy_rate": 0.05, "copies": 1, "valid": 19,
                                                          "proposals": 40, "think_rate": 0.95, "think": 95,
                                                          "solver_answers": 100, "accuracy": 0.4}}
    text = report_markdown(results)
    assert "12.0 steps per hour, in-loop generation 120 tokens/s, learner 75% of the step time" in text
    assert "steps 23-30): copy rate 5.0% (1 copies, 19 valid of 40 proposals), think rate 95.0% (95 of 100" in text


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_plot_writes_a_png_with_every_curve(tmp_path):
    tasks, benches = ["deduction", "abduction"], ["gsm8k", "cruxeval-o"]
    keys = {key.format(task=t, bench=b) for p in PANELS for key, _ in p.series for t in tasks for b in benches}
    metrics = [{"step": i, **{k: 0.1 * (i % 10) for k in keys}} for i in range(12)]
    for m in metrics:  # the canary's benchmarks are found from eval/format_rate/<bench>
        m.update({f"eval/format_rate/{b}": 1.0 for b in benches})
    assert canary_benchmarks(metrics) == ["cruxeval-o", "gsm8k"]
    path = tmp_path / "curves.png"
    plot_curves(metrics, tasks, path)
    width, height = png_size(path)
    assert width > 800 and height > 600


def test_plot_works_on_metrics_of_older_runs(tmp_path):
    """An older metrics.jsonl lacks the newer keys (flat groups, verbatim copies, canaries...): their panels stay
    empty. A canary line before training (step -1) with only eval/ keys is drawn on the canary panels alone."""
    old = [{"step": i, "solve/accuracy/deduction": 0.1 * i, "propose/valid_rate/deduction": 0.5} for i in range(6)]
    plot_curves(old, ["deduction"], tmp_path / "old.png")
    with_canary = [{"step": -1, "eval/gsm8k": 0.1, "eval/format_rate/gsm8k": 1.0, "eval/net_vs_base/gsm8k": 0,
                    "time/eval": 3.0}, *old, {"step": 6, "eval/canary_stop": 1}]
    plot_curves(with_canary, ["deduction"], tmp_path / "canary.png")
    assert png_size(tmp_path / "old.png") == png_size(tmp_path / "canary.png")


def test_run_experiment_resumes_training_and_reevaluates_only_new_weights(tmp_path, monkeypatch):
    """The orchestration, with training and evaluation replaced by stand-ins (both are integration-tested)."""
    from minazr.driver import experiment
    from minazr.driver.config import load_config

    run = tmp_path / "run"
    state = {"step": 0, "trained": [], "evaluated": []}

    def fake_training(cfg, resume=None):
        state["trained"].append((state["step"], resume))
        run.mkdir(exist_ok=True)
        with (run / "metrics.jsonl").open("a") as fh:
            if not resume:  # the canary before training: logged, plotted, not counted as a step
                fh.write(json.dumps({"step": -1, "eval/gsm8k": 0.1, "eval/format_rate/gsm8k": 1.0}) + "\n")
            for s in range(state["step"], cfg.train.steps):
                fh.write(json.dumps({"step": s, "time/step": 1.0, "gen/completions": 2, "gen/completion_tokens": 9,
                                     "propose/valid_rate/deduction": 0.5}) + "\n")
        state["step"] = cfg.train.steps
        return run

    def fake_eval(cfg, models, names, limit, data_dir, out):
        state["evaluated"].append((models[0], state["step"]))
        Path(out).mkdir(parents=True, exist_ok=True)
        good = 1 + (models[0] == str(run))  # the trained model gets one more item right
        summary = {}
        for name in names:
            rows = [{"id": f"{name}_{i}", "correct": i < good} for i in range(limit)]
            (Path(out) / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            summary[name] = {"accuracy": good / limit, "n": limit, "ci95": [0.0, 1.0]}
        (Path(out) / "eval.json").write_text(json.dumps(summary))

    monkeypatch.setattr("minazr.driver.train.run_training", fake_training)
    monkeypatch.setattr(experiment, "run_eval", fake_eval)
    monkeypatch.setattr(experiment, "_trained_steps", lambda run_dir: state["step"])
    monkeypatch.setattr(experiment, "resolve_eval_model",  # the run's weights change as it trains, the base's never
                        lambda spec: f"{spec}@{state['step']}" if spec == str(run) else spec)
    out = tmp_path / "exp"

    def go(steps):
        cfg = load_config(None, [f"run.out_dir={run}", f"train.steps={steps}", "selfplay.tasks=[deduction]"])
        return experiment.run_experiment(cfg, str(out), ["cruxeval-o"], 4, None, ["minazr", "experiment"])

    results = go(2)
    assert state["trained"] == [(0, None)] and len(state["evaluated"]) == 2
    assert results["steps"] == 2 and results["benchmarks"]["cruxeval-o"]["paired_difference"]["gained"] == 1
    go(2)  # nothing new: nothing redone
    assert len(state["trained"]) == 1 and len(state["evaluated"]) == 2
    results = go(3)  # trained further: resumed, and only the trained model is evaluated again
    assert state["trained"][-1] == (2, str(run))
    assert state["evaluated"][2:] == [(str(run), 3)]
    assert results["steps"] == 3 and (out / "learning_curves.png").is_file()
    phases = [json.loads(line)["phase"] for line in (out / "timings.json").read_text().splitlines()]
    assert phases == ["command", "train", "eval_base", "eval_trained", "command", "command", "train", "eval_trained"]
