"""The end-of-run paragraph reads the run's own metrics (and samples, where logged) and says what moved and why."""

import json

from minazr.driver.report import explain_run


def _write(run_dir, metrics, samples=(), model="smollm2-135m-instruct"):
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    (run_dir / "config.yaml").write_text(f"model:\n  name: {model}\n")


def _step(step, **extra):
    m = {"step": step, "version": step + 1, "gen/tokens_per_s": 200.0 + step, "time/step": 13.0,
         "propose/n/deduction": 2, "propose/valid_rate/deduction": 0.0,
         "propose/reject/deduction/no program defining f": 1, "propose/reject/deduction/no python code block": 1,
         "solve/n/deduction": 4, "solve/accuracy/deduction": 0.0, "solve/unparseable/deduction": 0.5,
         "learner/samples": 0, "learner/nonzero_advantage": 0, "learner/skipped_zero_advantage": 6}
    m.update(extra)
    return m


def test_a_run_with_equal_rewards_says_nothing_was_learned_and_why(tmp_path):
    metrics = [_step(0), _step(1, **{"propose/reject/deduction/no python code block": 0,
                                      "propose/reject/deduction/no program defining f": 2})]
    samples = [{"step": 1, "role": "solve", "outcome": "unparseable: no </think>: reasoning missing or cut off"},
               {"step": 1, "role": "propose", "outcome": "invalid: no program defining f"}]
    _write(tmp_path, metrics, samples)
    text = explain_run(tmp_path)
    assert "Steps 0-1: median 13.0 s a step, 200 generated tokens/s" in text
    assert "weight versions 1 -> 2" in text
    assert "0 of 4 passed validation (0%); the commonest rejections: 'no program defining f' (3), " \
           "'no python code block' (1)" in text
    assert "0 of 8 correct (0%), 4 unreadable (50%); in the 1 logged step(s), mostly 'no </think>" in text
    assert "no sample had a non-zero advantage" in text and "every proposal was invalid" in text
    assert "minazr setup --model qwen2.5-coder-0.5b-instruct" in text
    assert "tensorboard" not in text  # no tb/ in this run directory
    (tmp_path / "tb").mkdir()
    expected = explain_run(tmp_path)
    assert f"--logdir {tmp_path}/tb" in expected
    _write(tmp_path, [{"step": -1, "eval/gsm8k": 0.1, "time/eval": 5.0}, *metrics], samples)
    assert explain_run(tmp_path) == expected  # the canary before training (step -1) is not a training step


def test_a_kl_term_does_not_pass_for_learning(tmp_path):
    """With a KL penalty the learner trains on every sample; only non-zero advantages count as signal."""
    _write(tmp_path, [_step(0, **{"learner/samples": 6, "learner/skipped_zero_advantage": 0})])
    assert "no sample had a non-zero advantage" in explain_run(tmp_path)


def test_a_run_that_trained_reports_first_and_last_quarter(tmp_path):
    metrics = []
    for s in range(8):
        late = s >= 6
        metrics.append(_step(s, **{"propose/valid_rate/deduction": 0.5 if late else 0.0,
                                   "solve/accuracy/deduction": 0.25 if late else 0.0,
                                   "solve/think_rate/deduction": 1.0,
                                   "learner/nonzero_advantage": 4 if s % 2 else 0}))
    _write(tmp_path, metrics, model="qwen2.5-coder-0.5b-instruct")
    text = explain_run(tmp_path)
    assert "2 of 16 passed validation (12%)" in text  # 0.5 x 2 proposals on steps 6 and 7
    assert "2 of 32 correct (6%)" in text
    assert "16 samples had a non-zero advantage, on 4 of 8 steps" in text
    assert "valid proposals 0.00 -> 0.50, solver accuracy 0.00 -> 0.25, think rate 1.00 -> 1.00" in text
    assert "no sample had" not in text
    assert "setup --model" not in text  # this run already is the 0.5B model


def test_an_empty_run_says_so(tmp_path):
    assert "no steps were logged" in explain_run(tmp_path)
