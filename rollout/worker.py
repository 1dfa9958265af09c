"""RolloutWorker: the Ray actor around RolloutEngine, and RolloutPool, the Policy the self-play step uses.

The pool spreads each phase's requests over all workers by load (the number of completions each must generate),
calls them in parallel, and reassembles the results in request order.
"""

import os

import ray

from minazr.policy import GenRequest, Generation, Sampling
from rollout.engine import RolloutEngine

RolloutWorker = ray.remote(RolloutEngine)


def start_workers(model_path: str, cfg, seed: int) -> list:
    """Create cfg.num_workers RolloutWorker actors and wait until every engine is up."""
    workers = []
    # Ray caps OMP_NUM_THREADS at the actor's num_cpus; give the engine as many threads as cores it is bound to
    threads = cfg.cpu_cores_per_worker or max(1, (os.cpu_count() or 1) // cfg.num_workers)
    for i in range(cfg.num_workers):
        env = {"VLLM_LOGGING_LEVEL": "ERROR", "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error",
               "HF_HUB_DISABLE_PROGRESS_BARS": "1", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": str(threads)}
        actor = RolloutWorker.options(num_cpus=cfg.num_cpus, num_gpus=cfg.num_gpus,
                                      runtime_env={"env_vars": env}, max_concurrency=1)
        workers.append(actor.remote(str(model_path), cfg, seed, i, cfg.num_workers))
    ray.get([w.info.remote() for w in workers], timeout=cfg.timeout_s)
    return workers


def split_by_load(requests: list[GenRequest], n_workers: int) -> list[list[int]]:
    """Indices of the requests each worker gets: largest first, each to the least-loaded worker."""
    loads = [0] * n_workers
    parts: list[list[int]] = [[] for _ in range(n_workers)]
    for i in sorted(range(len(requests)), key=lambda i: -requests[i].n):
        w = loads.index(min(loads))
        parts[w].append(i)
        loads[w] += requests[i].n
    return parts


class RolloutPool:
    """A Policy over Ray rollout workers."""

    def __init__(self, workers: list, timeout_s: float = 1800.0):
        self.workers = workers
        self.timeout_s = timeout_s
        self.versions = [0] * len(workers)

    def generate(self, requests: list[GenRequest], sampling: Sampling) -> list[Generation]:
        parts = split_by_load(requests, len(self.workers))
        futures = [(idx, w.generate.remote([(requests[i].prompt, requests[i].n) for i in idx], sampling))
                   for w, idx in zip(self.workers, parts) if idx]
        out: list[Generation | None] = [None] * len(requests)
        for idx, fut in futures:
            for i, gen in zip(idx, ray.get(fut, timeout=self.timeout_s)):
                out[i] = gen
        return out

    def load_weights(self, address: str, version: int | None) -> list[dict]:
        stats = ray.get([w.load_weights.remote(address, version) for w in self.workers], timeout=self.timeout_s)
        self.versions = [s["version"] for s in stats]
        return stats

    def score(self, token_ids: list[int], start: int) -> list[list[float]]:
        return ray.get([w.score.remote(token_ids, start) for w in self.workers], timeout=self.timeout_s)
