"""`minazr bench`: rollout tokens/s per worker count against baselines, weight-sync latency, a full step, in one run.

    minazr bench --config configs/default.yaml --workers 1,2 --prompts 64 --max-tokens 128 --out runs/bench

Every measurement uses the same fixed prompts (self-play prompts built from the seeded task buffers, rendered with
the model's chat template) and the same sampling (temperature 1, exactly --max-tokens tokens per completion), with a
warm-up and --repeats timed runs, reporting the median:
  - the rollout pool (RolloutWorker Ray actors, requests spread by load) for each worker count;
  - the ceiling: plain `vllm.LLM.generate` in one process with the same engine settings, bound to all cores;
  - the seed's approach: transformers `generate` one prompt at a time (on a subset), and batched;
  - weight sync: learner publish -> every worker serving the new version, with its parts;
  - one full self-play step (propose, validate, solve, judge, learner update, weight sync).
Writes DIR/bench.json, DIR/bench.png, and prints a markdown table.
"""

import dataclasses
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

from minazr.selfplay.budget import PromptBudget
from minazr.selfplay.buffer import Buffers
from minazr.driver.config import Config
from minazr.sandbox.executor import from_config as executor_from_config
from minazr.driver.models import resolve_model
from minazr.contracts.policy import GenRequest, Sampling
from minazr.selfplay.prompts import Renderer
from minazr.selfplay.tasks import tasks_from_config

HF_SINGLE_PROMPTS = 4  # one-at-a-time generation is slow: time it on a few prompts


def bench_prompts(cfg: Config, tokenizer, n: int, executor) -> list[str]:
    """n self-play prompts (proposer and solver prompts of every task type) from the seeded buffers."""
    from minazr.selfplay.step import seed_buffers

    tasks = tasks_from_config(cfg.selfplay)
    buffers = Buffers.empty(tasks, cfg.buffer.cap)
    seed_buffers(buffers, tasks, executor)
    rng = random.Random(cfg.run.seed)
    render = Renderer.from_config(cfg.selfplay, tokenizer)
    pool = []
    for task in tasks.values():
        pool.append(render(task.propose_prompt(task.propose_context(buffers, rng))))
        pool += [render.solve(task, e) for e in buffers[task.name].entries()]
    return [pool[i % len(pool)] for i in range(n)]


def _timed(fn, repeats: int) -> dict:
    """Median over `repeats` runs of fn() -> (output_tokens, prompt_tokens, requests)."""
    fn()  # warm-up
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out, prompt, reqs = fn()
        dt = time.perf_counter() - t0
        runs.append({"output_tokens_per_s": out / dt, "total_tokens_per_s": (out + prompt) / dt,
                     "requests_per_s": reqs / dt, "seconds": dt})
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def pool_config(cfg, workers: int):
    return dataclasses.replace(cfg.rollout, num_workers=workers,
                               num_cpus=min(cfg.rollout.num_cpus, (os.cpu_count() or 1) / workers))


def measure_pool(ray, model_path, cfg, workers: int, prompts, sampling, repeats, pool=None) -> dict:
    """Tokens/s of a pool of `workers` (started here, or `pool`, which is left open for the next stage)."""
    from rollout.worker import start_pool

    shared = pool is not None
    pool = pool or start_pool(model_path, pool_config(cfg, workers), cfg.run.seed)

    def run():
        gens = pool.generate([GenRequest(p, 1) for p in prompts], sampling)
        return (sum(len(c.token_ids) for g in gens for c in g.completions),
                sum(len(g.prompt_token_ids) for g in gens), len(gens))

    try:
        return {"workers": workers, **_timed(run, repeats)}
    finally:
        if not shared:
            pool.close()


def measure_ceiling(model_path, cfg, prompts, sampling, repeats, dtype: str | None = None,
                    timeout_s: float = 1800.0) -> dict:
    """Plain vLLM in a fresh process (so nothing of Ray or of the driver is in the way), in `dtype` (None: the
    config's, `auto` decided as the engines decide it)."""
    from minazr.contracts.dtypes import engine_dtype

    dtype = dtype or engine_dtype(cfg.rollout.dtype, cfg.rollout.num_gpus > 0)
    args = {"model": str(model_path), "rollout": {**cfg.rollout.__dict__, "dtype": dtype}, "prompts": prompts,
            "sampling": sampling.__dict__, "repeats": repeats, "seed": cfg.run.seed}
    return {**_run_plain("--ceiling", args, timeout_s), "dtype": dtype}


def _run_plain(mode: str, args: dict, timeout_s: float) -> dict:
    """Run this module with `mode` (--ceiling, --replay-plain) in a fresh process; its last JSON line."""
    res = subprocess.run([sys.executable, "-m", "minazr.bench.loop", mode], input=json.dumps(args),
                         capture_output=True, text=True, timeout=timeout_s)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode != 0 or not lines:
        raise RuntimeError(f"plain vLLM ({mode}) failed: {res.stderr.strip().splitlines()[-1:]}")
    return json.loads(lines[-1])


def measure_dtypes(model_path, cfg, prompts, sampling, repeats, done: dict, timeout_s: float) -> dict:
    """Plain vLLM's tokens/s in each dtype a CPU engine can run (float32 and bfloat16), side by side: `done` is the
    ceiling already measured in the config's dtype. A dtype the CPU only emulates can be many times slower: one
    that does not finish within `timeout_s` is reported as below the rate that would have finished."""
    from minazr.contracts.dtypes import cpu_flags, native

    flags = cpu_flags()
    out = {}
    for dtype in ("float32", "bfloat16"):
        entry = {"native": native(dtype, flags)}
        if dtype == done["dtype"]:
            entry["output_tokens_per_s"] = done["output_tokens_per_s"]
        else:
            try:
                entry["output_tokens_per_s"] = measure_ceiling(model_path, cfg, prompts, sampling, repeats, dtype,
                                                               timeout_s)["output_tokens_per_s"]
            except subprocess.TimeoutExpired:
                tokens = len(prompts) * sampling.max_tokens * (repeats + 1)  # warm-up and timed runs
                entry.update(output_tokens_per_s=None, timed_out_s=timeout_s,
                             below_tokens_per_s=tokens / timeout_s)
        out[dtype] = entry
    return out


def _plain_llm(args: dict):
    """Plain vLLM, bound to every core, with the rollout engines' settings (a fresh process's one engine)."""
    r = args["rollout"]
    cores = sorted(os.sched_getaffinity(0))
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, cores))
    os.environ["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    from vllm import LLM

    return LLM(model=args["model"], dtype=r["dtype"], enforce_eager=r["enforce_eager"],
               max_model_len=r["max_model_len"], max_num_seqs=r["max_num_seqs"], seed=args["seed"],
               kv_cache_memory_bytes=int(r["kv_cache_gb"] * 2**30))


def measure_replay_plain(model_path, cfg: Config, step_requests: list, dtype: str = "float32") -> dict:
    """The loop's own requests (every step after the first, each step's in one `LLM.generate` call, with the loop's
    seeds and max_tokens, EOS honoured) through plain vLLM in a fresh process, in `dtype`: the yardstick for the
    loop's in-loop generation rate on this CPU."""
    steps = [[{"prompt": r.prompt, "n": r.n, "seed": r.seed, "temperature": s.temperature, "top_p": s.top_p,
               "max_tokens": s.max_tokens} for r, s in requests] for requests in step_requests]
    args = {"model": str(model_path), "rollout": {**cfg.rollout.__dict__, "dtype": dtype}, "steps": steps,
            "seed": cfg.run.seed}
    return {**_run_plain("--replay-plain", args, 3600.0), "dtype": dtype}


def _replay_plain_main() -> None:
    from vllm import SamplingParams

    args = json.loads(sys.stdin.read())
    llm = _plain_llm(args)
    llm.generate(["warm-up"] * 4, SamplingParams(max_tokens=16), use_tqdm=False)
    tokens, seconds = 0, 0.0
    for step in args["steps"]:
        params = [SamplingParams(n=q["n"], temperature=q["temperature"], top_p=q["top_p"], seed=q["seed"],
                                 max_tokens=q["max_tokens"], logprobs=0) for q in step]
        t0 = time.perf_counter()
        outs = llm.generate([q["prompt"] for q in step], params, use_tqdm=False)
        seconds += time.perf_counter() - t0
        tokens += sum(len(c.token_ids) for o in outs for c in o.outputs)
    print(json.dumps({"output_tokens_per_s": tokens / max(seconds, 1e-9), "tokens": tokens, "seconds": seconds}),
          flush=True)


def _ceiling_main() -> None:
    from vllm import SamplingParams

    args = json.loads(sys.stdin.read())
    llm = _plain_llm(args)
    s = args["sampling"]
    sp = SamplingParams(temperature=s["temperature"], top_p=s["top_p"], max_tokens=s["max_tokens"],
                        ignore_eos=s["ignore_eos"], logprobs=0)

    def run():
        outs = llm.generate(args["prompts"], sp, use_tqdm=False)
        return (sum(len(o.outputs[0].token_ids) for o in outs), sum(len(o.prompt_token_ids) for o in outs),
                len(outs))

    print(json.dumps(_timed(run, args["repeats"])), flush=True)


def measure_hf(model_path, prompts, max_tokens: int, repeats: int, dtype: str = "float32") -> tuple[dict, dict]:
    """The seed project's approach: transformers generate, batched (all prompts) and one prompt at a time, in the
    engines' dtype."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(os.cpu_count() or 1)
    tok = AutoTokenizer.from_pretrained(model_path, padding_side="left")
    tok.pad_token = tok.pad_token or tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype)).eval()
    kw = dict(do_sample=True, temperature=1.0, max_new_tokens=max_tokens, min_new_tokens=max_tokens,
              pad_token_id=tok.pad_token_id)

    def gen(batch):
        enc = tok(batch, return_tensors="pt", padding=True)
        with torch.no_grad():
            out = model.generate(**enc, **kw)
        return (out.shape[0] * (out.shape[1] - enc["input_ids"].shape[1]), int(enc["attention_mask"].sum()),
                len(batch))

    def single():
        totals = [gen([p]) for p in prompts[:HF_SINGLE_PROMPTS]]
        return tuple(sum(t[i] for t in totals) for i in range(3))

    return _timed(lambda: gen(prompts), max(1, repeats - 1)), _timed(single, 1)


def measure_sync_and_step(ray, model_path, cfg, executor, tokenizer, repeats, pool=None) -> tuple[dict, dict]:
    """Weight-sync latency with its parts, and one full self-play step broken into phases (on `pool`, the earlier
    stage's pool of rollout.num_workers workers, when given; closed here either way)."""
    from learner.actor import start_learner
    from minazr.driver.pipeline import Pipeline
    from minazr.selfplay.rewards import RewardScheme
    from minazr.selfplay.step import seed_buffers, selfplay_step
    from minazr.driver.train import _LearnerHandle, _PoolHandle, validation_guards
    from rollout.worker import start_pool

    learner = start_learner(model_path, cfg.learner, cfg.rollout, cfg.run.seed)
    pool = pool or start_pool(model_path, cfg.rollout, cfg.run.seed)  # while the learner loads its model
    address = ray.get(learner.address.remote(), timeout=cfg.rollout.timeout_s)
    try:
        syncs = []
        for v in range(1, repeats + 2):
            ray.get(learner.set_version.remote(v), timeout=cfg.rollout.timeout_s)
            t0 = time.perf_counter()
            pub = ray.get(learner.publish.remote(), timeout=cfg.rollout.timeout_s)
            stats = pool.load_weights(address, v)
            syncs.append({"total_s": time.perf_counter() - t0, "serialize_s": pub["serialize_s"],
                          "fetch_and_load_s": max(s["fetch_and_load_s"] for s in stats),
                          "transfer_s": max(s["transfer_s"] for s in stats), "bytes": pub["bytes"],
                          "buckets": pub["buckets"]})
        sync = {k: statistics.median(s[k] for s in syncs[1:]) for k in syncs[1]}

        tasks = tasks_from_config(cfg.selfplay)
        buffers = Buffers.empty(tasks, cfg.buffer.cap)
        seed_buffers(buffers, tasks, executor)
        version = repeats + 1
        pipe = Pipeline(_LearnerHandle(ray, learner, cfg.rollout.timeout_s), _PoolHandle(pool, address), 0, version)
        t0 = time.perf_counter()
        render = Renderer.from_config(cfg.selfplay, tokenizer)
        guards = validation_guards(cfg, PromptBudget.from_config(cfg, render, tasks, tokenizer))
        res = selfplay_step(pool, buffers, tasks, executor, cfg.selfplay, RewardScheme.from_config(cfg.rewards),
                            render, random.Random(0), 0, cfg.executor.timeout_s, cfg.advantages.estimator,
                            cfg.advantages.weighting, confirm_runs=cfg.executor.confirm_runs, **guards)
        pipe.submit(0, res.samples, res.metrics)
        (_, m), = pipe.drain()
        total = time.perf_counter() - t0
        phases = {"rollout": m["time/rollout"],  # generation, with validation and judging overlapped
                  "execute": m["time/validate"] + m["time/judge"],
                  "learner_update": m["time/learner_update"] + m["time/serialize"],
                  "weight_sync": m["time/weight_sync"]}
        phases["other"] = max(0.0, total - phases["rollout"] - phases["learner_update"] - phases["weight_sync"])
        phases["total"] = total
        return sync, phases
    finally:
        pool.close()
        ray.kill(learner)


def parse_loop_settings(text: str) -> list[tuple[int, int, int]]:
    """'0,1,1/1+1' -> [(staleness, engine cores, learner threads)]: 0 cores/threads leaves the config's split."""
    out = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        staleness, _, split = item.partition("/")
        engine, _, learner = split.partition("+")
        values = (int(staleness), int(engine or 0), int(learner or 0))
        if min(values) < 0:
            raise ValueError(item)
        out.append(values)
    return out


def measure_loop(cfg: Config, steps: int, staleness: int, out_dir: Path, engine_cores: int = 0,
                 learner_threads: int = 0) -> tuple[dict, list]:
    """`steps` steps of the real training loop (`minazr train`: seeding, streaming self-play, judge, learner,
    weight sync, all on), timed from the end of its first step's rollout to the end of its last one's (the first
    step warms up compiled kernels and caches). Returns the steady-state figures and each step's requests."""
    from minazr.driver.config import load_config
    from minazr.driver.train import run_training

    split = f"-cores{engine_cores}+{learner_threads}" if engine_cores or learner_threads else ""
    run_dir = out_dir / f"loop-staleness{staleness}{split}"
    shutil.rmtree(run_dir, ignore_errors=True)
    overrides = [f"train.steps={steps}", f"train.max_staleness={staleness}", f"run.out_dir={run_dir}",
                 "eval.every=0", "train.checkpoint_every=0", "train.sample_table_every=0", "train.tensorboard=false"]
    overrides += [f"rollout.cpu_cores_per_worker={engine_cores}"] if engine_cores else []
    overrides += [f"learner.threads={learner_threads}"] if learner_threads else []
    lcfg = load_config(None, overrides, base=cfg)
    marks, requests = [], []

    def on_step(step, result):
        marks.append(time.perf_counter())
        requests.append(result.requests)

    t0 = time.perf_counter()
    run_training(lcfg, on_step=on_step)
    total = time.perf_counter() - t0
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steady = metrics[1:]
    wall = marks[-1] - marks[0]
    total_of = lambda key: sum(m.get(key, 0.0) for m in steady)  # noqa: E731
    report = {
        "steps": steps, "max_staleness": staleness, "engine_cores": engine_cores or "all",
        "learner_threads": learner_threads or "all", "steady_steps": len(steady), "wall_s": wall,
        "run_s": total, "step_s": wall / max(1, len(steady)),
        "in_loop_generation_tokens_per_s": total_of("gen/completion_tokens") / max(total_of("time/rollout"), 1e-9),
        "completions_per_s": total_of("gen/completions") / wall,
        "completions_per_step": total_of("gen/completions") / max(1, len(steady)),
        "trained_samples_per_s": total_of("learner/samples") / wall,
        "learner_tokens_per_s": total_of("learner/processed_tokens") / max(total_of("time/learner_update"), 1e-9),
        "learner_completion_tokens_per_s": total_of("learner/tokens") / max(total_of("time/learner_update"), 1e-9),
        "weight_sync_s": total_of("time/weight_sync") / max(1, len(steady)),
        "weight_sync_share": total_of("time/weight_sync") / wall,
        "rollout_s": total_of("time/rollout") / max(1, len(steady)),
        "learner_update_s": total_of("time/learner_update") / max(1, len(steady)),
        "learner_wait_s": total_of("time/learner_wait") / max(1, len(steady)),
    }
    return report, requests[1:]


def measure_replay(model_path, cfg: Config, step_requests: list) -> dict:
    """The loop's own requests (every step after the first), each step's all at once through the pool's stream:
    what the engines do on exactly these prompts with nothing waiting on anything (EOS honoured), with the loop's
    per-request seeds and without any (one pool for both)."""
    from rollout.worker import start_pool

    pool = start_pool(model_path, cfg.rollout, cfg.run.seed)
    try:
        out = {}
        for seeded in (True, False):
            tokens, seconds, completions = 0, 0.0, 0
            for requests in step_requests:
                stream = pool.stream(cfg.selfplay.stream_steps)
                for i, (request, sampling) in enumerate(requests):
                    stream.add(i, request if seeded else dataclasses.replace(request, seed=None), sampling)
                t0 = time.perf_counter()
                while stream.busy():
                    for _, gen in stream.next():
                        tokens += sum(len(c.token_ids) for c in gen.completions)
                        completions += len(gen.completions)
                seconds += time.perf_counter() - t0
            out["seeded" if seeded else "unseeded"] = {
                "output_tokens_per_s": tokens / max(seconds, 1e-9), "completions_per_s": completions / seconds,
                "seeded": seeded, "tokens": tokens}
        return out
    finally:
        pool.close()


def measure_peer(model_path, step_requests: list, cfg: Config, steps: int) -> dict:
    """TRL's GRPOTrainer (minazr/bench/peer.py) on the loop's own prompts: as many completions per step as the loop's
    steps had, in groups of selfplay.n_solve, at selfplay.max_tokens."""
    from minazr.bench import peer as bench_peer

    missing = bench_peer.available()
    if missing:
        return {"skipped": f"TRL is not installed (pip install -e '.[peer]'): {missing}"}
    per_step = sum(r.n for r, _ in step_requests[0]) if step_requests else 0
    group = max(2, cfg.selfplay.n_solve)
    prompts = list(dict.fromkeys(r.prompt for r, _ in step_requests[0]))
    prompts = [prompts[i % len(prompts)] for i in range(max(1, round(per_step / group)))]
    spec = {"model": str(model_path), "prompts": prompts, "num_generations": group,
            "max_tokens": max(cfg.selfplay.max_tokens, cfg.selfplay.solve_max_tokens), "steps": steps}
    failures = {}
    for mode in ("vllm-colocate", "transformers"):  # the stronger peer first
        try:
            res = subprocess.run([sys.executable, "-m", "minazr.bench.peer", mode], input=json.dumps(spec),
                                 capture_output=True, text=True, timeout=7200)
        except subprocess.TimeoutExpired:
            failures[mode] = "timed out after 2 h"
            continue
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
        if res.returncode == 0 and lines:
            return {**json.loads(lines[-1]), "prompts": len(prompts), "failed_modes": failures}
        errors = [ln for ln in res.stderr.splitlines() if re.search(r"\w+(Error|Exception)\b", ln)]
        failures[mode] = (errors or res.stderr.strip().splitlines() or ["no output"])[-1].strip()[:300]
    return {"failed": failures}


def run_bench(cfg: Config, workers: list[int], n_prompts: int, max_tokens: int, repeats: int, out: str,
              loop_steps: int = 4, loop_settings: list[tuple[int, int, int]] = ((0, 0, 0), (1, 0, 0)),
              peer_steps: int = 1, dtype_timeout_s: float = 600.0, scale_steps: int = 0) -> dict:
    import ray
    from transformers import AutoTokenizer

    model_path = resolve_model(cfg.model.name)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    sampling = Sampling(cfg.selfplay.temperature, cfg.selfplay.top_p, max_tokens, ignore_eos=True)
    loop_settings = list(loop_settings) if loop_steps >= 2 else []
    loop_stages = [f"loop {s}/{e}+{t}" for s, e, t in loop_settings]
    loop_stages += ["replay", "replay, plain vLLM float32", "peer (TRL)"] if loop_settings else []
    on_cpu = cfg.rollout.num_gpus == 0
    stages = ["prompts", *(f"pool x{w}" for w in workers), "vLLM ceiling", *(["dtypes"] if on_cpu else []),
              "transformers", "weight sync + step",
              *loop_stages, *(["scale 1 -> 2 -> 1"] if scale_steps else [])]
    bar = tqdm(stages, desc="bench", unit="stage", dynamic_ncols=True)
    report: dict = {"model": cfg.model.name, "device": _device(cfg), "prompts": n_prompts, "max_tokens": max_tokens,
                    "repeats": repeats}
    executor = executor_from_config(cfg.executor)
    try:
        bar.set_postfix_str("prompts")
        prompts = bench_prompts(cfg, tokenizer, n_prompts, executor)
        bar.update(1)
        from minazr.driver.ray_session import connect_ray

        connect_ray(cfg.train)
        per, kept = [], None
        for w in workers:
            bar.set_postfix_str(f"pool x{w}")
            if w == cfg.rollout.num_workers:  # this pool serves the weight-sync stage too: one start less
                from rollout.worker import start_pool

                kept = start_pool(model_path, pool_config(cfg, w), cfg.run.seed)
            per.append(measure_pool(ray, model_path, cfg, w, prompts, sampling, repeats, kept if w ==
                                    cfg.rollout.num_workers else None))
            bar.update(1)
        bar.set_postfix_str("vLLM ceiling")
        ceiling = measure_ceiling(model_path, cfg, prompts, sampling, repeats)
        bar.update(1)
        dtypes = None
        if on_cpu:
            bar.set_postfix_str("dtypes")
            dtypes = measure_dtypes(model_path, cfg, prompts, sampling, repeats, ceiling, dtype_timeout_s)
            bar.update(1)
        bar.set_postfix_str("transformers")
        hf_batched, hf_single = measure_hf(model_path, prompts, max_tokens, repeats, ceiling["dtype"])
        bar.update(1)
        bar.set_postfix_str("weight sync + step")
        sync, step = measure_sync_and_step(ray, model_path, cfg, executor, tokenizer, repeats, kept)
        bar.update(1)
        loops, loop_requests = [], None
        for (staleness, engine_cores, learner_threads), stage in zip(loop_settings, loop_stages):
            bar.set_postfix_str(stage)
            figures, requests = measure_loop(cfg, loop_steps, staleness, Path(out), engine_cores, learner_threads)
            loops.append(figures)
            loop_requests = loop_requests or requests  # the first setting's requests are replayed
            bar.update(1)
        if loops:
            bar.set_postfix_str("replay")
            replay = measure_replay(model_path, cfg, loop_requests)
            bar.update(1)
            bar.set_postfix_str("replay, plain vLLM float32")
            replay["plain_float32"] = measure_replay_plain(model_path, cfg, loop_requests, "float32")
            bar.update(1)
            bar.set_postfix_str("peer (TRL)")
            peer = measure_peer(model_path, loop_requests, cfg, peer_steps) if peer_steps else {"skipped": "--peer-steps 0"}
            bar.update(1)
        scaled = None
        if scale_steps:
            from minazr.bench.scale import measure_scale

            bar.set_postfix_str("scale 1 -> 2 -> 1")
            scaled = measure_scale(cfg, scale_steps, Path(out))
            bar.update(1)
    finally:
        bar.close()
        executor.close()
    best = max(per, key=lambda p: p["output_tokens_per_s"])
    report.update({
        "rollout_tokens_per_s": best["output_tokens_per_s"], "best_workers": best["workers"],
        "per_workers": [{"workers": p["workers"], "output_tokens_per_s": p["output_tokens_per_s"],
                         "total_tokens_per_s": p["total_tokens_per_s"], "requests_per_s": p["requests_per_s"]}
                        for p in per],
        "vllm_ceiling_tokens_per_s": ceiling["output_tokens_per_s"], "vllm_ceiling": ceiling,
        "engine_dtype": ceiling["dtype"], "dtype_ceilings": dtypes,
        "hf_batched_tokens_per_s": hf_batched["output_tokens_per_s"],
        "hf_single_tokens_per_s": hf_single["output_tokens_per_s"],
        "weight_sync_s": sync["total_s"], "weight_sync": sync, "step_breakdown_s": step,
    })
    report["ratios"] = {"pool_vs_ceiling": report["rollout_tokens_per_s"] / report["vllm_ceiling_tokens_per_s"],
                        "pool_vs_hf_single": report["rollout_tokens_per_s"] / report["hf_single_tokens_per_s"],
                        "weight_sync_share_of_step": sync["total_s"] / step["total"]}
    if loops:
        first = loops[0]
        report["loop"] = {"settings": loops, "replay": replay, "peer": peer,
                          "in_loop_vs_generate_only": first["in_loop_generation_tokens_per_s"]
                          / replay["seeded"]["output_tokens_per_s"],
                          "seeded_vs_unseeded": replay["seeded"]["output_tokens_per_s"]
                          / replay["unseeded"]["output_tokens_per_s"]}
        # the yardstick for any CPU: the loop against plain vLLM in float32 on the loop's own requests
        report["loop"]["in_loop_vs_plain_float32"] = first["in_loop_generation_tokens_per_s"] \
            / replay["plain_float32"]["output_tokens_per_s"]
        if "completions_per_s" in peer:
            best = max(x["completions_per_s"] for x in loops)
            report["loop"]["vs_peer_completions_per_s"] = best / peer["completions_per_s"]
    if scaled is not None:
        report["scale"] = scaled
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(report, indent=2))
    _plot(report, out_dir / "bench.png")
    print(markdown(report))
    return report


def _device(cfg: Config) -> str:
    if cfg.rollout.num_gpus > 0:
        return "cuda"
    return f"cpu ({os.cpu_count()} cores)"


def markdown(r: dict) -> str:
    rows = ["| measurement | output tok/s | total tok/s | requests/s |", "| --- | --- | --- | --- |"]
    for p in r["per_workers"]:
        rows.append(f"| rollout pool, {p['workers']} worker(s) | {p['output_tokens_per_s']:.0f} | "
                    f"{p['total_tokens_per_s']:.0f} | {p['requests_per_s']:.2f} |")
    c = r["vllm_ceiling"]
    rows.append(f"| plain vLLM, one process (ceiling) | {c['output_tokens_per_s']:.0f} | "
                f"{c['total_tokens_per_s']:.0f} | {c['requests_per_s']:.2f} |")
    for dtype, d in (r.get("dtype_ceilings") or {}).items():
        native = "native" if d["native"] else "emulated on this CPU"
        tok = f"{d['output_tokens_per_s']:.0f}" if d["output_tokens_per_s"] else \
            f"< {d['below_tokens_per_s']:.0f} (not done in {d['timed_out_s']:.0f} s)"
        rows.append(f"| plain vLLM, {dtype} ({native}){' (the engines)' if dtype == r['engine_dtype'] else ''} | "
                    f"{tok} | | |")
    rows.append(f"| transformers generate, batched | {r['hf_batched_tokens_per_s']:.0f} | | |")
    rows.append(f"| transformers generate, one at a time | {r['hf_single_tokens_per_s']:.1f} | | |")
    s, st, ratios = r["weight_sync"], r["step_breakdown_s"], r["ratios"]
    lines = ["\n".join(rows), "",
             f"weight sync {s['total_s']:.2f} s (serialize {s['serialize_s']:.2f} s, fetch + load "
             f"{s['fetch_and_load_s']:.2f} s, {s['bytes'] / 2**20:.0f} MiB in {s['buckets']} buckets)",
             "self-play step " + ", ".join(f"{k} {v:.1f} s" for k, v in st.items()),
             f"pool / ceiling {ratios['pool_vs_ceiling']:.2f}x, pool / one-at-a-time transformers "
             f"{ratios['pool_vs_hf_single']:.0f}x, weight sync {100 * ratios['weight_sync_share_of_step']:.1f}% of "
             f"a step ({r['model']}, {r['device']}, {r['prompts']} prompts x {r['max_tokens']} tokens)"]
    if "loop" in r:
        lines += ["", loop_markdown(r["loop"])]
    if "scale" in r:
        from minazr.bench.scale import scale_markdown

        lines += ["", scale_markdown(r["scale"])]
    return "\n".join(lines)


def loop_markdown(loop: dict) -> str:
    rows = ["| training loop (steady state) | step s | in-loop gen tok/s | completions/s | trained samples/s | "
            "learner tok/s (all tokens) | weight sync s (share) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for x in loop["settings"]:
        split = "" if x["engine_cores"] == "all" and x["learner_threads"] == "all" else \
            f", engine cores {x['engine_cores']}, learner threads {x['learner_threads']}"
        rows.append(f"| max_staleness {x['max_staleness']}{split} | {x['step_s']:.1f} | "
                    f"{x['in_loop_generation_tokens_per_s']:.0f} | {x['completions_per_s']:.2f} | "
                    f"{x['trained_samples_per_s']:.2f} | {x['learner_tokens_per_s']:.0f} | "
                    f"{x['weight_sync_s']:.2f} ({100 * x['weight_sync_share']:.1f}%) |")
    rp, peer = loop["replay"], loop["peer"]
    lines = ["\n".join(rows), "",
             f"the loop's own requests, all at once (generate-only, EOS honoured): "
             f"{rp['seeded']['output_tokens_per_s']:.0f} tok/s seeded, {rp['unseeded']['output_tokens_per_s']:.0f} "
             f"unseeded (seeded / unseeded {loop['seeded_vs_unseeded']:.2f}x); in-loop / "
             f"generate-only {loop['in_loop_vs_generate_only']:.2f}x"
             + (f"; plain vLLM float32 on the same requests {rp['plain_float32']['output_tokens_per_s']:.0f} tok/s, "
                f"in-loop / that {loop['in_loop_vs_plain_float32']:.2f}x" if "plain_float32" in rp else "")]
    if "completions_per_s" in peer:
        lines.append(f"peer: TRL GRPOTrainer ({peer['mode']} generation) {peer['completions_per_s']:.3f} "
                     f"completions/s ({peer['completions_per_step']} per step, {peer['step_s']:.0f} s a step); "
                     f"minAZR {loop['vs_peer_completions_per_s']:.1f}x")
        for mode, reason in peer.get("failed_modes", {}).items():
            lines.append(f"  (TRL {mode} did not run here: {reason})")
    else:
        lines.append(f"peer: {peer.get('skipped') or 'failed: ' + json.dumps(peer.get('failed'))}")
    return "\n".join(lines)


def _plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [p["workers"] for p in r["per_workers"]]
    ax.plot(xs, [p["output_tokens_per_s"] for p in r["per_workers"]], "o-", label="rollout pool (Ray + vLLM)")
    for value, style, label in ((r["vllm_ceiling_tokens_per_s"], "--", "plain vLLM, one process"),
                                (r["hf_batched_tokens_per_s"], ":", "transformers, batched"),
                                (r["hf_single_tokens_per_s"], "-.", "transformers, one at a time")):
        ax.axhline(value, linestyle=style, color="gray" if "vLLM" in label else None, label=label)
    ax.set_xticks(xs)
    ax.set_xlabel("rollout workers")
    ax.set_ylabel("output tokens / s")
    ax.set_ylim(bottom=0)
    ax.set_title(f"minazr bench: {r['model']} on {r['device']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__" and sys.argv[1:] == ["--ceiling"]:
    _ceiling_main()
elif __name__ == "__main__" and sys.argv[1:] == ["--replay-plain"]:
    _replay_plain_main()
