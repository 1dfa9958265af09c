"""RolloutWorker: the Ray actor around RolloutEngine, and RolloutPool, the Policy the self-play step uses.

    pool = start_pool(model_path, cfg.rollout, seed)      # placement group, workers up, ready to serve
    pool.load_weights("tcp://10.0.0.5:5555", None)         # every worker serves the learner's newest version
    gens = pool.generate(requests, sampling)               # one Generation per request, in request order
    pool.close()

Scheduling: each phase's requests are cut into chunks of about equal load (completions to generate), largest
first, `rollout.chunks_per_worker` per worker; a worker takes the next chunk as soon as it returns one, so a slow
worker holds back at most its last chunk. Failures: when a worker process dies (a crash, the OOM killer, SIGKILL),
its unfinished chunk goes back to the queue for the workers still alive, and a replacement actor starts in the
background on the same placement bundle, fetches the newest weights, and only then takes work; results are written
by request index exactly once, so no sample is lost or counted twice. Every remote call has a deadline
(`rollout.timeout_s`): a hang becomes PoolError naming the worker, never a frozen run.
"""

import os
import time
from collections import deque

import ray
from ray.exceptions import (GetTimeoutError, NodeDiedError, OutOfMemoryError, RayActorError, RayTaskError,
                            WorkerCrashedError)
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from minazr.contracts.policy import GenRequest, Generation, PoolError, Sampling, root_cause
from rollout.engine import RolloutEngine

RolloutWorker = ray.remote(RolloutEngine)
# Engines and the learner log only errors: a run's progress is the driver's progress bar and metrics.
WORKER_ENV = {"VLLM_LOGGING_LEVEL": "ERROR", "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error",
              "HF_HUB_DISABLE_PROGRESS_BARS": "1", "PYTHONWARNINGS": "ignore"}


def start_pool(model_path: str, cfg, seed: int) -> "RolloutPool":
    """cfg.num_workers workers placed per cfg.placement, each engine up; a PoolError if they cannot be placed."""
    group = _placement_group(cfg)

    def spawn(i: int):
        # Ray caps OMP_NUM_THREADS at the actor's num_cpus; give the engine as many threads as cores it is bound to
        threads = cfg.cpu_cores_per_worker or max(1, (os.cpu_count() or 1) // cfg.num_workers)
        options = dict(num_cpus=cfg.num_cpus, num_gpus=cfg.num_gpus, max_concurrency=1,
                       runtime_env={"env_vars": {**WORKER_ENV, "OMP_NUM_THREADS": str(threads)}})
        if group is not None:
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=i)
        return RolloutWorker.options(**options).remote(str(model_path), cfg, seed, i, cfg.num_workers)

    pool = RolloutPool([spawn(i) for i in range(cfg.num_workers)], cfg.timeout_s, spawn=spawn,
                       max_restarts=cfg.max_restarts, chunks_per_worker=cfg.chunks_per_worker, group=group)
    pool.wait_ready()
    return pool


def _placement_group(cfg):
    """One bundle per worker with the strategy of rollout.placement (None: Ray's default scheduling)."""
    if cfg.placement == "none" or (cfg.num_cpus == 0 and cfg.num_gpus == 0):
        return None
    bundle = {"CPU": cfg.num_cpus, **({"GPU": cfg.num_gpus} if cfg.num_gpus else {})}
    group = placement_group([dict(bundle)] * cfg.num_workers, strategy=cfg.placement.upper())
    try:
        ray.get(group.ready(), timeout=min(cfg.timeout_s, 120.0))
    except GetTimeoutError:
        remove_placement_group(group)
        raise PoolError(f"cannot place {cfg.num_workers} rollout workers of {bundle} with strategy "
                        f"{cfg.placement!r}: the cluster has {ray.available_resources()} free "
                        f"(rollout.num_workers, rollout.num_cpus, rollout.num_gpus, rollout.placement)") from None
    return group


def split_by_load(requests: list[GenRequest], parts: int) -> list[list[int]]:
    """Indices of the requests in each part: largest first, each to the least-loaded part; empty parts dropped."""
    loads = [0] * parts
    out: list[list[int]] = [[] for _ in range(parts)]
    for i in sorted(range(len(requests)), key=lambda i: -requests[i].n):
        p = loads.index(min(loads))
        out[p].append(i)
        loads[p] += requests[i].n
    return [p for p in out if p]


# Errors a remote call can end with; is_death() tells a dead worker (replace it) from an engine that raised (a bug).
DEATHS = (RayActorError, RayTaskError, OutOfMemoryError, NodeDiedError, WorkerCrashedError)


def is_death(error: Exception) -> bool:
    """The worker process, its node, or its vLLM engine process is gone (the OOM killer, SIGKILL, a lost node)."""
    if isinstance(error, (RayActorError, OutOfMemoryError, NodeDiedError, WorkerCrashedError)):
        return True
    return "EngineDeadError" in str(error)


class RolloutPool:
    """A Policy over Ray rollout workers that survives worker deaths (see the module docstring)."""

    def __init__(self, workers: list, timeout_s: float = 1800.0, spawn=None, max_restarts: int = 0,
                 chunks_per_worker: int = 1, group=None):
        self.workers = list(workers)
        self.timeout_s = timeout_s
        self.spawn = spawn  # i -> a new actor for slot i (None: deaths are fatal)
        self.max_restarts = max_restarts
        self.chunks_per_worker = chunks_per_worker
        self.group = group
        self.versions = [0] * len(workers)
        self.restarts = 0
        self.address: str | None = None  # the weight server replacements fetch from
        self.starting: dict = {}  # ref of a replacement's first weight load -> (slot, deadline): not serving yet

    # ---- the Policy interface

    def generate(self, requests: list[GenRequest], sampling: Sampling) -> list[Generation]:
        parts = len(self.workers) * (self.chunks_per_worker if len(self.workers) > 1 else 1)
        queue = deque(split_by_load(requests, parts))
        idle = deque(s for s in range(len(self.workers)) if s not in {v[0] for v in self.starting.values()})
        running: dict = {}  # ref -> (worker slot, chunk, deadline)
        out: list[Generation | None] = [None] * len(requests)
        while queue or running:
            while queue and idle:
                slot, chunk = idle.popleft(), queue.popleft()
                seeds = [requests[i].seed if requests[i].seed is not None
                         else None if sampling.seed is None else sampling.seed + i for i in chunk]
                ref = self.workers[slot].generate.remote([(requests[i].prompt, requests[i].n) for i in chunk],
                                                         sampling, seeds)
                running[ref] = (slot, chunk, time.monotonic() + self.timeout_s)
            ref = self._wait_one(running)
            if ref in self.starting:  # a replacement has its weights: it serves from now on
                started = self._started(ref)
                if started is not None:
                    idle.append(started[0])
                continue
            slot, chunk, _ = running.pop(ref)
            try:
                gens = ray.get(ref)
            except DEATHS as e:
                if not is_death(e):  # the engine raised: a bug or bad input, not a dead process
                    raise PoolError(f"rollout worker {slot} failed to generate: {root_cause(e)}") from None
                self._replace(slot, e)  # starts in the background; the others go on meanwhile
                queue.appendleft(chunk)  # generated again, by whichever worker is free first
                continue
            for i, gen in zip(chunk, gens):
                out[i] = gen
            idle.append(slot)
        return out

    def stream(self, steps: int = 8) -> "PoolStream":
        """A Stream (minazr/contracts/stream.py) over the workers' engines: see PoolStream."""
        self._settle()
        return PoolStream(self, steps)

    def load_weights(self, address: str, version: int | None) -> list[dict]:
        """Every worker fetches `version` (None: the newest) from the weight server at `address`."""
        self.address = address
        self._settle()
        stats: dict[int, dict] = {}
        deadline = time.monotonic() + self.timeout_s
        for slot, ref in [(s, w.load_weights.remote(address, version)) for s, w in enumerate(self.workers)]:
            try:
                stats[slot] = self._get(ref, slot, "load weights", deadline, deaths=True)
            except DEATHS as e:
                self._replace(slot, e)  # the replacement fetches the newest weights itself
        stats.update(self._settle())
        self.versions = [stats[s]["version"] for s in range(len(self.workers))]
        return [stats[s] for s in range(len(self.workers))]

    def score(self, token_ids: list[int], start: int) -> list[list[float]]:
        self._settle()
        return [self._get(w.score.remote(token_ids, start), s, "score") for s, w in enumerate(self.workers)]

    # ---- lifecycle

    def wait_ready(self) -> list[dict]:
        self._settle()
        return [self._get(w.info.remote(), s, "start") for s, w in enumerate(self.workers)]

    def info(self) -> list[dict]:
        return self.wait_ready()

    def close(self) -> None:
        for w in self.workers:
            try:
                ray.kill(w)
            except Exception:  # already gone: nothing to close
                pass
        if self.group is not None:
            remove_placement_group(self.group)
            self.group = None

    # ---- failures

    def _get(self, ref, slot: int, what: str, deadline: float | None = None, deaths: bool = False):
        """ray.get with the pool's deadline; errors become PoolError, except deaths when the caller replaces."""
        try:
            return ray.get(ref, timeout=max(0.0, (deadline or time.monotonic() + self.timeout_s) - time.monotonic()))
        except GetTimeoutError:
            raise PoolError(f"rollout worker {slot} did not {what} within {self.timeout_s:.0f} s "
                            f"(rollout.timeout_s)") from None
        except DEATHS as e:
            if deaths and is_death(e):
                raise
            raise PoolError(f"rollout worker {slot} failed to {what}: {root_cause(e)}") from None

    def _replace(self, slot: int, error: Exception) -> None:
        """Start a new actor in `slot` that fetches the newest weights first; it serves once that load is done
        (tracked in self.starting), and the other workers carry on meanwhile."""
        if self.spawn is None or self.restarts >= self.max_restarts:
            raise PoolError(f"rollout worker {slot} died ({root_cause(error)}) and rollout.max_restarts="
                            f"{self.max_restarts} replacements are used up") from None
        self.restarts += 1
        try:
            ray.kill(self.workers[slot])
        except Exception:  # the dead actor may already be cleaned up
            pass
        self.workers[slot] = self.spawn(slot)
        w = self.workers[slot]
        ref = w.load_weights.remote(self.address, None) if self.address is not None else w.info.remote()
        self.starting[ref] = (slot, time.monotonic() + self.timeout_s)

    def _started(self, ref) -> tuple[int, dict] | None:
        """(slot, load stats) of the replacement that finished loading; None if it died too (replaced again)."""
        slot, _ = self.starting.pop(ref)
        try:
            stats = self._get(ref, slot, "restart", deaths=True)
        except DEATHS as e:
            self._replace(slot, e)
            return None
        self.versions[slot] = stats.get("version", 0)
        return slot, stats

    def _settle(self) -> dict[int, dict]:
        """Wait until every replacement serves; their load stats by slot."""
        done = {}
        while self.starting:
            started = self._started(self._wait_one({}))
            if started is not None:
                done[started[0]] = started[1]
        return done

    def _wait_one(self, running: dict):
        """The first ready ref among running calls and starting replacements; PoolError at the first deadline."""
        pending = {**running, **{r: (slot, None, d) for r, (slot, d) in self.starting.items()}}
        first = min(pending.values(), key=lambda v: v[2])
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=max(0.0, first[2] - time.monotonic()))
        if not ready:
            what = "start" if first[1] is None else "finish a generate call"
            raise PoolError(f"rollout worker {first[0]} did not {what} within {self.timeout_s:.0f} s "
                            f"(rollout.timeout_s)")
        return ready[0]


class PoolStream:
    """Streaming generation over the pool: every worker's engine keeps its own running batch.

    add() queues a request for the worker with the least unfinished work. next() waits for the advance calls in
    flight (each: add the queued requests, run `steps` engine steps), at once sends the next round (so the engines
    keep decoding while the caller validates and judges what came back), and returns the requests that finished.
    Requests added after a next() therefore join the round after the one it started: rounds are fixed in number of
    engine steps and the workers move in lockstep, so the same adds give the same completions run after run.

    A worker that dies mid-stream is replaced as in generate(); its unfinished requests start again on the others
    (their seeds make them the same requests, though not the same batches), nothing is lost or returned twice.
    """

    def __init__(self, pool: RolloutPool, steps: int):
        self.pool, self.steps = pool, max(1, steps)
        n = len(pool.workers)
        self.queued: list[list[tuple]] = [[] for _ in range(n)]  # per slot: (id, prompt, n, seed, sampling)
        self.assigned: list[dict] = [{} for _ in range(n)]  # per slot: id -> the add, until it finishes
        self.keys: dict[str, object] = {}  # request id -> caller's key
        self.flight: dict = {}  # ref -> (slot, deadline)
        self.counter = 0

    def add(self, key, request: GenRequest, sampling: Sampling) -> None:
        rid = f"r{self.counter}"
        self.counter += 1
        self.keys[rid] = key
        self._assign((rid, request.prompt, request.n, request.seed, sampling))

    def busy(self) -> bool:
        return bool(self.flight) or any(self.queued) or any(self.assigned)

    def next(self) -> list[tuple]:
        if not self.flight:
            self._launch()
        done = []
        for ref, (slot, deadline) in list(self.flight.items()):
            del self.flight[ref]
            try:
                finished = self.pool._get(ref, slot, "stream", deadline, deaths=True)
            except DEATHS as e:
                self._lost(slot, e)
                continue
            for rid, gen in finished:
                self.assigned[slot].pop(rid, None)
                done.append((self.keys.pop(rid), gen))
        self._launch()
        return done

    def close(self) -> None:
        """Abort whatever is unfinished (a step that raised); the engines are ready for generate() again."""
        for ref in list(self.flight):
            try:
                ray.get(ref, timeout=self.pool.timeout_s)
            except Exception:  # a dead worker: nothing left to abort there
                pass
        self.flight.clear()
        for slot, w in enumerate(self.pool.workers):
            if self.assigned[slot]:
                try:
                    ray.get(w.cancel.remote(), timeout=self.pool.timeout_s)
                except Exception:
                    pass
        self.queued = [[] for _ in self.queued]
        self.assigned = [{} for _ in self.assigned]

    def _launch(self) -> None:
        serving = self._serving()
        for slot in serving:
            if self.queued[slot] or self.assigned[slot]:
                adds, self.queued[slot] = self.queued[slot], []
                ref = self.pool.workers[slot].advance.remote(adds, self.steps)
                self.flight[ref] = (slot, time.monotonic() + self.pool.timeout_s)

    def _serving(self) -> list[int]:
        if self.pool.starting:  # replacements that have loaded their weights serve from now on
            ready, _ = ray.wait(list(self.pool.starting), num_returns=len(self.pool.starting), timeout=0)
            for ref in ready:
                self.pool._started(ref)
        starting = {slot for slot, _ in self.pool.starting.values()}
        if len(starting) == len(self.pool.workers):  # every worker is being replaced: wait for them
            self.pool._settle()
            starting = set()
        return [s for s in range(len(self.pool.workers)) if s not in starting]

    def _assign(self, add: tuple) -> None:
        serving = self._serving()
        slot = min(serving, key=lambda s: (sum(a[2] for a in self.assigned[s].values()), s))
        self.assigned[slot][add[0]] = add
        self.queued[slot].append(add)

    def _lost(self, slot: int, error: Exception) -> None:
        """The worker in `slot` died: replace it, and hand its unfinished requests to the workers still serving."""
        if not is_death(error):
            raise PoolError(f"rollout worker {slot} failed to generate: {root_cause(error)}") from None
        lost = list(self.assigned[slot].values())
        self.assigned[slot], self.queued[slot] = {}, []
        self.pool._replace(slot, error)
        for add in lost:
            self._assign(add)
