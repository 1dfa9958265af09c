"""`minazr bench` end to end on a tiny budget: real Ray workers, a real vLLM ceiling process, transformers
baselines, a real weight push and self-play step, and two steps of the real training loop with generation running
ahead of learning (max_staleness 1), replayed generate-only. Checks the outputs exist and every figure is positive."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

TINY = ["rollout.enforce_eager=true", "rollout.kv_cache_gb=0.5", "selfplay.propose_per_task=1",
        "selfplay.solve_per_task=1", "selfplay.n_solve=2", "selfplay.n_mc=2", "selfplay.max_tokens=16",
        "selfplay.tasks=[deduction, math]"]


def test_tiny_bench_writes_json_plot_and_table(tmp_path):
    cmd = [sys.executable, "-m", "minazr", "bench", "--workers", "1", "--prompts", "4", "--max-tokens", "8",
           "--repeats", "1", "--loop-steps", "2", "--loop", "1", "--peer-steps", "0", "--scale-steps", "0",
           "--out", str(tmp_path), *TINY]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "| rollout pool, 1 worker(s) |" in res.stdout and "plain vLLM, one process" in res.stdout
    assert "| max_staleness 1 |" in res.stdout and "peer: --peer-steps 0" in res.stdout
    r = json.loads((tmp_path / "bench.json").read_text())
    for key in ("rollout_tokens_per_s", "vllm_ceiling_tokens_per_s", "hf_batched_tokens_per_s",
                "hf_single_tokens_per_s", "weight_sync_s"):
        assert r[key] > 0, key
    assert [p["workers"] for p in r["per_workers"]] == [1]  # two workers: test_integration_train.py
    assert all(p["output_tokens_per_s"] > 0 and p["requests_per_s"] > 0 for p in r["per_workers"])
    assert set(r["step_breakdown_s"]) >= {"rollout", "execute", "learner_update", "weight_sync", "other", "total"}
    (loop,) = r["loop"]["settings"]
    assert loop["max_staleness"] == 1 and loop["steady_steps"] == 1
    for key in ("in_loop_generation_tokens_per_s", "completions_per_s", "step_s", "weight_sync_s"):
        assert loop[key] > 0, key
    assert r["loop"]["replay"]["seeded"]["tokens"] > 0 and r["loop"]["replay"]["unseeded"]["tokens"] > 0
    assert r["loop"]["in_loop_vs_generate_only"] > 0
    # plain vLLM in each CPU dtype side by side (the engines' one measured once), and the loop's own requests
    # through plain vLLM in float32: the yardstick for in-loop generation on any CPU
    assert set(r["dtype_ceilings"]) == {"float32", "bfloat16"} and r["engine_dtype"] in r["dtype_ceilings"]
    assert all(d["output_tokens_per_s"] > 0 for d in r["dtype_ceilings"].values())
    assert r["dtype_ceilings"][r["engine_dtype"]]["output_tokens_per_s"] == r["vllm_ceiling_tokens_per_s"]
    assert r["dtype_ceilings"]["float32"]["native"] is True
    assert "| plain vLLM, float32 (native)" in res.stdout and "| plain vLLM, bfloat16 (" in res.stdout
    assert r["loop"]["replay"]["plain_float32"]["tokens"] > 0 and r["loop"]["in_loop_vs_plain_float32"] > 0
    assert r["step_breakdown_s"]["total"] > 0 and r["weight_sync"]["bytes"] > 0
    assert r["model"] == "smollm2-135m-instruct" and r["prompts"] == 4 and r["max_tokens"] == 8
    assert r["device"].startswith("cpu")
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "scale" not in r  # the scale stage (--scale-steps N) and its report: tests/test_scaling.py


def test_bench_rejects_bad_worker_lists():
    res = subprocess.run([sys.executable, "-m", "minazr", "bench", "--workers", "0,x"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2 and "--workers must be positive integers" in res.stderr
