"""`minazr bench-faults`: what the rollout pool's scheduling and fault handling cost.

    minazr bench-faults --config configs/default.yaml --prompts 64 --max-tokens 128 --out runs/bench_faults

Measures output tokens/s of the pool with 1 worker, with 2 workers taking one equal share each
(`rollout.chunks_per_worker=1`), and with 2 workers taking 2 chunks each; then the wall time of one generate call
during which one of the 2 workers is killed with SIGKILL once it has spent `--kill-after` CPU-seconds generating
(so the kill lands mid-call however loaded the machine), against the same call without a kill. Every call uses the
same prompts and seeded sampling (temperature 1, exactly --max-tokens tokens each).
"""

import dataclasses
import json
import os
import signal
import statistics
import threading
import time
from pathlib import Path

from tqdm import tqdm

from minazr.driver.models import resolve_model
from minazr.contracts.policy import GenRequest, Sampling


SETTINGS = ((1, 1), (2, 1), (2, 2))  # (workers, chunks per worker); the kill is measured in (2, 1)


def run_bench(cfg, n_prompts: int, max_tokens: int, repeats: int, kill_after: float, out: str | None,
              settings=SETTINGS) -> dict:
    import ray

    from learner.actor import start_learner
    from minazr.driver.ray_session import connect_ray
    from rollout.worker import start_pool

    connect_ray(cfg.train)
    path = resolve_model(cfg.model.name)
    learner = start_learner(path, cfg.learner, cfg.rollout, cfg.run.seed)
    address = ray.get(learner.address.remote(), timeout=cfg.rollout.timeout_s)
    ray.get(learner.publish.remote(), timeout=cfg.rollout.timeout_s)
    requests = [GenRequest(f"Write a Python function number {i} that sorts a list, and explain it.", 1)
                for i in range(n_prompts)]
    sampling = Sampling(1.0, 1.0, max_tokens, ignore_eos=True, seed=cfg.run.seed)
    cores = os.cpu_count() or 1
    report: dict = {"model": cfg.model.name, "prompts": n_prompts, "max_tokens": max_tokens, "pool": []}
    with tqdm(total=len(settings) + ((2, 1) in settings), desc="bench-faults", unit="stage",
              dynamic_ncols=True) as bar:
        for workers, chunks in settings:
            bar.set_postfix_str(f"{workers} workers x {chunks} chunks")
            rcfg = dataclasses.replace(cfg.rollout, num_workers=workers, chunks_per_worker=chunks,
                                       num_cpus=min(cfg.rollout.num_cpus, cores / workers), max_restarts=1)
            pool = start_pool(path, rcfg, cfg.run.seed)
            try:
                pool.load_weights(address, None)
                pool.generate(requests[:8], sampling)  # warm-up
                times = [_timed(pool.generate, requests, sampling) for _ in range(repeats)]
                report["pool"].append({"workers": workers, "chunks_per_worker": chunks,
                                       "output_tokens_per_s": n_prompts * max_tokens / statistics.median(times)})
                bar.update(1)
                if (workers, chunks) == (2, 1):
                    bar.set_postfix_str("SIGKILL one worker mid-call")
                    report["kill"] = _kill_one(pool, requests, sampling, kill_after, statistics.median(times))
                    bar.update(1)
            finally:
                pool.close()
    ray.kill(learner)
    print(json.dumps(report, indent=2))
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "bench_faults.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def _kill_one(pool, requests, sampling, kill_after: float, normal_s: float) -> dict:
    victim = pool.info()[1]["pid"]
    restarts = pool.restarts
    killed, stop = kill_when_busy(victim, kill_after)
    t0 = time.perf_counter()
    gens = pool.generate(requests, sampling)
    elapsed = time.perf_counter() - t0
    stop.set()
    complete = all(len(g.completions) == 1 and len(g.completions[0].token_ids) == sampling.max_tokens for g in gens)
    if not killed.is_set():
        print(f"minazr bench-faults: the worker finished before it had used {kill_after} CPU-seconds, so nothing "
              "was killed; give it more work (--prompts, --max-tokens) or a smaller --kill-after", flush=True)
    return {"kill_after_cpu_s": kill_after, "killed_mid_call": killed.is_set(), "call_with_kill_s": elapsed,
            "normal_call_s": normal_s, "restarts": pool.restarts - restarts, "all_requests_complete": complete}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def kill_when_busy(pid: int, cpu_s: float) -> tuple[threading.Event, threading.Event]:
    """SIGKILL `pid` from a background thread once it has spent `cpu_s` more CPU-seconds, that is, once it is
    really generating, however busy the machine (a wall-clock timer can fire before the work starts or after it
    ends). Returns (killed, stop): set `stop` to give up."""
    killed, stop = threading.Event(), threading.Event()
    start = cpu_seconds(pid)

    def watch():
        while not stop.is_set():
            try:
                if cpu_seconds(pid) - start >= cpu_s:
                    os.kill(pid, signal.SIGKILL)
                    killed.set()
                    return
            except (OSError, ValueError):  # the process is gone already
                return
            time.sleep(0.02)

    threading.Thread(target=watch, daemon=True).start()
    return killed, stop
