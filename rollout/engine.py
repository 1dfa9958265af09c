"""RolloutEngine: one vLLM engine behind the narrow interface the driver needs (a plain class; the Ray actor in
rollout/worker.py is a thin wrapper, so tests can use it in-process).

    engine = RolloutEngine(model_path, cfg.rollout, seed=0, worker_index=0)
    gens = engine.generate([("prompt text", 4)], Sampling(temperature=1.0, max_tokens=256))
    done = engine.advance([("key", "prompt text", 4, seed, sampling)], steps=8)  # streaming: [(key, Generation)]
    engine.load_weights("tcp://10.0.0.5:5555", version=3)    # fetched over ZMQ inside the engine's worker
    engine.score(token_ids, start)                           # log-probs of token_ids[start:] (for tests, evals)
"""

import os
import time

from minazr.contracts.dtypes import engine_dtype
from minazr.contracts.policy import PROMPT_TOO_LONG, Completion, Generation, Sampling

EXTENSION = "rollout.weight_extension.WeightReceiver"


def cpu_binding(worker_index: int, cores_per_worker: int, num_workers: int) -> str:
    """The core range (VLLM_CPU_OMP_THREADS_BIND) of worker i: the node's cores split evenly, i-th slice."""
    cores = sorted(os.sched_getaffinity(0))
    per = cores_per_worker or max(1, len(cores) // max(1, num_workers))
    start = (worker_index * per) % len(cores)
    chosen = [cores[(start + k) % len(cores)] for k in range(min(per, len(cores)))]
    return ",".join(map(str, chosen))


def _params(n: int, sampling: Sampling, seed: int | None):
    from vllm import SamplingParams

    return SamplingParams(n=n, temperature=sampling.temperature, top_p=sampling.top_p, max_tokens=sampling.max_tokens,
                          ignore_eos=sampling.ignore_eos, logprobs=0, seed=seed, stop=list(sampling.stop) or None)


class RolloutEngine:
    def __init__(self, model_path: str, cfg, seed: int = 0, worker_index: int = 0, num_workers: int = 1):
        on_gpu = cfg.num_gpus > 0
        if not on_gpu:
            # vLLM's CPU backend reserves a core for the frontend by default; bind the engine to its own slice
            # instead, so one worker on a 2-core machine uses both cores (DESIGN.md: 600 vs 330 tok/s).
            os.environ["VLLM_CPU_OMP_THREADS_BIND"] = cpu_binding(worker_index, cfg.cpu_cores_per_worker,
                                                                  num_workers)
            os.environ["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"
            # Run the engine core in this process. In its own process it starts stepping as soon as the first
            # requests of a generate call arrive, so batch shapes, and with them the float rounding that decides
            # near-tied samples, depend on timing; in-process, generate adds every request before the first step,
            # and the same seeded requests give the same completions (what --resume promises).
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
        from vllm import LLM

        self.dtype = engine_dtype(cfg.dtype, on_gpu)  # auto: bf16 only where the hardware has it
        kwargs = dict(model=str(model_path), dtype=self.dtype, enforce_eager=cfg.enforce_eager,
                      max_model_len=cfg.max_model_len, max_num_seqs=cfg.max_num_seqs, seed=seed + worker_index,
                      worker_extension_cls=EXTENSION, enable_chunked_prefill=cfg.chunked_prefill or on_gpu,
                      # behaviour log-probs of the distribution actually sampled from (after temperature), which
                      # the learner reproduces for the importance ratio; vLLM's default is before temperature
                      logprobs_mode="processed_logprobs")
        if on_gpu:
            kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
        else:
            kwargs["kv_cache_memory_bytes"] = int(cfg.kv_cache_gb * 2**30)
        self.llm = LLM(**kwargs)
        self.streaming: set[str] = set()  # keys of streamed requests not finished yet
        self.version = 0
        self.worker_index = worker_index
        self.binding = os.environ.get("VLLM_CPU_OMP_THREADS_BIND")

    def generate(self, requests: list[tuple[str, int]], sampling: Sampling,
                 seeds: list[int] | None = None) -> list[Generation]:
        """n completions per prompt with token ids, behaviour log-probs of the sampled tokens, finish reasons;
        `seeds` (one per request) makes each request's sampling reproducible."""
        if not requests:
            return []
        if self.streaming:
            raise RuntimeError("generate() while streamed requests are unfinished (cancel() them first)")
        seeds = seeds or [None] * len(requests)
        too_long = {i: ids for i, (prompt, _) in enumerate(requests) if (ids := self._too_long(prompt)) is not None}
        todo = [i for i in range(len(requests)) if i not in too_long]
        params = [_params(requests[i][1], sampling, seeds[i]) for i in todo]
        outs = self.llm.generate([requests[i][0] for i in todo], params, use_tqdm=False) if todo else []
        done = dict(zip(todo, (self._generation(out) for out in outs)))
        return [done[i] if i in done else self._refused(too_long[i], requests[i][1]) for i in range(len(requests))]

    def _too_long(self, prompt: str) -> list[int] | None:
        """The prompt's token ids when they leave no room for one generated token (vLLM would refuse the
        request, and with it the whole batch), else None."""
        limit = self.llm.llm_engine.model_config.max_model_len
        if 4 * len(prompt) + 8 < limit:  # a token is at least one UTF-8 byte, a character at most four
            return None
        ids = self.llm.get_tokenizer().encode(prompt)
        return ids if len(ids) >= limit else None

    def _refused(self, prompt_ids: list[int], n: int) -> Generation:
        """A request whose prompt cannot fit the context: n empty completions that say so (that sample's failure,
        never the batch's)."""
        return Generation(prompt_ids, [Completion("", [], [], PROMPT_TOO_LONG) for _ in range(n)], self.version,
                          self.worker_index)

    def advance(self, adds: list[tuple[str, str, int, int | None, Sampling]], steps: int) -> list[tuple]:
        """Streaming: add requests (key, prompt, n, seed, sampling) to the running batch, run up to `steps` engine
        steps (fewer when nothing is left), and return (key, Generation) for each request that finished. Requests
        join the batch the engine is already decoding (continuous batching); the same calls in the same order give
        the same completions (the engine runs in this process, and a step count, not a clock, ends each call)."""
        from vllm.sampling_params import RequestOutputKind

        engine = self.llm.llm_engine
        done = []
        for key, prompt, n, seed, sampling in adds:
            too_long = self._too_long(prompt)
            if too_long is not None:
                done.append((str(key), self._refused(too_long, n)))
                continue
            params = _params(n, sampling, seed)
            params.output_kind = RequestOutputKind.FINAL_ONLY
            engine.add_request(str(key), prompt, params)
            self.streaming.add(str(key))
        for _ in range(steps):
            if not engine.has_unfinished_requests():
                break
            for out in engine.step():
                if out.finished:
                    self.streaming.discard(out.request_id)
                    done.append((out.request_id, self._generation(out)))
        return done

    def cancel(self) -> int:
        """Abort every unfinished streamed request; returns how many there were."""
        keys = list(self.streaming)
        if keys:
            self.llm.llm_engine.abort_request(keys)
            while self.llm.llm_engine.has_unfinished_requests():
                self.llm.llm_engine.step()
        self.streaming.clear()
        return len(keys)

    def _generation(self, out) -> Generation:
        comps = []
        for c in out.outputs:
            ids = list(c.token_ids)
            lps = [c.logprobs[i][t].logprob for i, t in enumerate(ids)] if c.logprobs else [0.0] * len(ids)
            comps.append(Completion(c.text, ids, lps, c.finish_reason or "stop"))
        return Generation(list(out.prompt_token_ids), comps, self.version, self.worker_index)

    def load_weights(self, address: str, version: int | None) -> dict:
        """Fetch weights (None: the newest) from the learner's weight server; serve them from now on."""
        if self.streaming:
            raise RuntimeError("load_weights() while streamed requests are unfinished")
        t0 = time.perf_counter()
        (stats,) = self.llm.collective_rpc("minazr_load_weights", args=(address, version))
        self.llm.reset_prefix_cache()  # cached KV blocks were computed by the old weights
        self.version = stats["version"]
        return {**stats, "total_s": time.perf_counter() - t0, "worker": self.worker_index, "node_id": _node()[0]}

    def score(self, token_ids: list[int], start: int) -> list[float]:
        """Log-probs the serving weights give token_ids[start:], each conditioned on everything before it."""
        from vllm import SamplingParams

        out = self.llm.generate([{"prompt_token_ids": list(token_ids)}],
                                SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=1.0), use_tqdm=False)
        lp = out[0].prompt_logprobs
        return [lp[i][token_ids[i]].logprob for i in range(start, len(token_ids))]

    def info(self) -> dict:
        """Who and where this engine is: slot, served version, core binding, host, pid, Ray node id and IP."""
        node_id, node_ip = _node()
        return {"worker": self.worker_index, "version": self.version, "binding": self.binding, "dtype": self.dtype,
                "node": os.uname().nodename, "pid": os.getpid(), "node_id": node_id, "node_ip": node_ip}


def _node() -> tuple[str | None, str | None]:
    """(Ray node id, node IP) of this process; (None, None) outside Ray (the plain engine runs without it too)."""
    try:
        import ray
    except ImportError:
        return None, None
    if not ray.is_initialized():
        return None, None
    return ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address()
