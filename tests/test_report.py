"""The end-of-run paragraph reads the run's own metrics and samples and says what moved and why."""

import json

from minazr.driver.report import explain_run


def _write(run_dir, metrics, samples):
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))


def _sample(role, outcome, reward=-1.0):
    return {"role": role, "outcome": outcome, "reward": reward, "task": "deduction"}


def test_a_run_with_equal_rewards_says_nothing_was_learned_and_why(tmp_path):
    metrics = [{"step": s, "version": s + 1, "gen/tokens_per_s": 200.0 + s, "time/step": 13.0,
                "learner/samples": 0, "learner/skipped_zero_advantage": 3} for s in range(2)]
    samples = [_sample("propose", "invalid: no program defining f"), _sample("propose", "invalid: no python code block"),
               _sample("propose", "invalid: no program defining f"),
               _sample("solve", "unparseable: no </think>: reasoning missing or cut off"), _sample("solve", "wrong")]
    _write(tmp_path, metrics, samples)
    text = explain_run(tmp_path)
    assert "Steps 0-1: median 13.0 s a step, 200 generated tokens/s" in text
    assert "weight versions 1 -> 2" in text
    assert "0 of 3 passed validation (0%)" in text
    assert "'no program defining f' (2)" in text.splitlines()[2]
    assert "0 of 2 correct (0%), 1 unreadable (50%)" in text
    assert "none of the 6 samples had a non-zero advantage" in text
    assert "every proposal was invalid" in text
    assert "minazr setup --model qwen2.5-coder-0.5b-instruct" in text and f"--logdir {tmp_path}/tb" in text


def test_a_run_that_trained_reports_first_and_last_quarter(tmp_path):
    metrics = []
    for s in range(8):
        late = s >= 6
        metrics.append({"step": s, "version": s + 1, "gen/tokens_per_s": 100.0, "time/step": 60.0,
                        "learner/samples": 4 if s % 2 else 0, "learner/skipped_zero_advantage": 0 if s % 2 else 4,
                        "propose/valid_rate/deduction": 0.5 if late else 0.0,
                        "solve/accuracy/deduction": 0.25 if late else 0.0, "solve/think_rate/deduction": 1.0})
    samples = [_sample("propose", "valid", 0.3), _sample("propose", "invalid: no input block"),
               _sample("solve", "correct", 1.0), _sample("solve", "wrong")]
    _write(tmp_path, metrics, samples)
    text = explain_run(tmp_path)
    assert "1 of 2 passed validation (50%)" in text
    assert "1 of 2 correct (50%)" in text
    assert "16 samples with a non-zero advantage trained the model on 4 of 8 steps (16 samples had none)" in text
    assert "valid proposals 0.00 -> 0.50, solver accuracy 0.00 -> 0.25, think rate 1.00 -> 1.00" in text
    assert "no update" not in text


def test_an_empty_run_says_so(tmp_path):
    assert "no steps were logged" in explain_run(tmp_path)
