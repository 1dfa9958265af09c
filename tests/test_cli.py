"""The minazr command: usage errors and config errors exit 2 with one line on stderr, no traceback."""

import subprocess
import sys

import yaml


def minazr(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "minazr", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_unknown_subcommand_prints_usage():
    res = minazr("frobnicate")
    assert res.returncode == 2
    assert "usage: minazr" in res.stderr and "Traceback" not in res.stderr


def test_config_error_is_one_line():
    res = minazr("train", "learner.lr=abc")
    assert res.returncode == 2
    assert res.stderr.strip() == "minazr: config error: learner.lr: expected a number, got 'abc'"


def test_missing_config_file():
    res = minazr("bench", "--config", "/nonexistent.yaml")
    assert res.returncode == 2 and "config file not found" in res.stderr and "Traceback" not in res.stderr


def test_config_prints_resolved_yaml():
    res = minazr("config", "executor.timeout_s=2", "run.seed=3")
    assert res.returncode == 0, res.stderr
    data = yaml.safe_load(res.stdout)
    assert data["executor"]["timeout_s"] == 2.0 and data["run"]["seed"] == 3


def test_train_with_an_unknown_model_is_one_line(tmp_path):
    res = minazr("train", f"run.out_dir={tmp_path / 'run'}", "model.name=no-such-model")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().startswith("minazr: model error: unknown model 'no-such-model'")


def test_training_refuses_sampling_the_learner_cannot_reproduce(tmp_path):
    res = minazr("train", f"run.out_dir={tmp_path / 'run'}", "selfplay.top_p=0.9")
    assert res.returncode == 2 and res.stderr.strip().startswith("minazr: selfplay.top_p=0.9: training needs top_p 1.0")
    res = minazr("train", f"run.out_dir={tmp_path / 'run'}", "selfplay.temperature=0")
    assert res.returncode == 2 and "temperature > 0" in res.stderr and "Traceback" not in res.stderr


def test_resume_without_a_checkpoint_is_one_line(tmp_path):
    (tmp_path / "config.yaml").write_text("run:\n  seed: 1\n")
    res = minazr("train", "--resume", str(tmp_path))
    assert res.returncode == 2 and res.stderr.strip() == f"minazr: {tmp_path}: no complete checkpoint to resume from"
    res = minazr("train", "--resume", str(tmp_path / "missing"))
    assert res.returncode == 2 and "config file not found" in res.stderr


def test_bench_executor_runs(tmp_path):
    res = minazr("bench-executor", "--programs", "20", "--out", str(tmp_path), "executor.workers=2")
    assert res.returncode == 0, res.stderr
    report = yaml.safe_load((tmp_path / "bench_executor.json").read_text())
    assert report["programs"] == 20 and report["failed"] == 0 and report["programs_per_s"] > 0


def test_eval_bad_input_is_one_line(tmp_path):
    cases = [
        (["--benchmarks", "gsm8k,mmlu"], "minazr: data error: unknown benchmark 'mmlu'"),
        (["--data-dir", str(tmp_path)], f"minazr: data error: {tmp_path}/gsm8k_test.jsonl: benchmark file not found"),
        (["--model", "no-such-model", "--limit", "1"], "minazr: model error: unknown model 'no-such-model'"),
        (["--model", str(tmp_path / "run"), "--limit", "1"], None),  # a run dir without checkpoints: next case
        (["--limit", "-1"], "minazr: --limit must be 0 (all) or more"),
    ]
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    cases[3] = (cases[3][0], f"minazr: model error: {tmp_path / 'run'}: run directory has no complete checkpoint")
    for args, expected in cases:
        res = minazr("eval", *args, "--out", str(tmp_path / "out"))
        assert res.returncode == 2 and "Traceback" not in res.stderr, (args, res.stderr[-2000:])
        assert res.stderr.strip().startswith(expected) and "\n" not in res.stderr.strip(), (args, res.stderr)
    assert not (tmp_path / "out").exists()  # nothing started, nothing written


def test_unreachable_cluster_address_is_one_line(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on, held (bound, not listening) so nothing else takes it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        res = minazr("train", f"run.out_dir={tmp_path / 'run'}", f"train.ray_address=127.0.0.1:{port}")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert res.stderr.strip().startswith(f"minazr: cannot reach the Ray cluster at 127.0.0.1:{port}: "), res.stderr
    assert "\n" not in res.stderr.strip(), res.stderr
