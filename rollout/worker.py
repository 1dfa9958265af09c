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

Scaling while a run goes on (`minazr scale RUN_DIR --workers N`, docs/cluster.md): `request(n)` reserves room for
each new worker (refused, pool unchanged, if the cluster has none within rollout.scale_timeout_s) and starts it; a
joiner fetches the newest weights, and again if a push overtook that fetch, before it takes any request, so it never
serves an older version than the others. Leavers (the newest workers first) take no new work, finish the call they
are in, hand back what they had not finished (as on a death, but without one) and exit. `take_events()` lists the
joins and leaves, which the run records in its metrics.
"""

import logging
import os
import queue
import threading
import time
from collections import defaultdict, deque

import ray
from ray.exceptions import (GetTimeoutError, NodeDiedError, OutOfMemoryError, RayActorError, RayTaskError,
                            WorkerCrashedError)

from minazr.contracts.policy import GenRequest, Generation, PoolError, Sampling, root_cause
from rollout.engine import RolloutEngine
from rollout.placement import Slots

log = logging.getLogger(__name__)

RolloutWorker = ray.remote(RolloutEngine)
# Engines and the learner log only errors: a run's progress is the driver's progress bar and metrics.
WORKER_ENV = {"VLLM_LOGGING_LEVEL": "ERROR", "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error",
              "HF_HUB_DISABLE_PROGRESS_BARS": "1", "PYTHONWARNINGS": "ignore"}


def start_pool(model_path: str, cfg, seed: int) -> "RolloutPool":
    """cfg.num_workers workers placed per cfg.placement, each engine up; a PoolError if they cannot be placed."""
    slots = Slots(cfg)

    def spawn(i: int):
        # worker i's engine binds to the i-th slice of its node's cores (rollout.cpu_cores_per_worker, else an
        # even split among the start-up workers; a joiner, usually on a node of its own, wraps around to the first
        # slice); Ray caps OMP_NUM_THREADS at the actor's num_cpus, so the engine gets as many threads as cores it
        # is bound to
        count = cfg.num_workers
        threads = cfg.cpu_cores_per_worker or max(1, (os.cpu_count() or 1) // count)
        options = dict(num_cpus=cfg.num_cpus, num_gpus=cfg.num_gpus, max_concurrency=1,
                       runtime_env={"env_vars": {**WORKER_ENV, "OMP_NUM_THREADS": str(threads)}}, **slots.options(i))
        return RolloutWorker.options(**options).remote(str(model_path), cfg, seed, i, count)

    pool = RolloutPool([spawn(i) for i in range(cfg.num_workers)], cfg.timeout_s, spawn=spawn,
                       max_restarts=cfg.max_restarts, chunks_per_worker=cfg.chunks_per_worker, slots=slots)
    pool.wait_ready()
    return pool


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


POLL_S = 1.0  # a pool waiting on its workers looks at this interval for scale requests and for leavers to retire


class RolloutPool:
    """A Policy over Ray rollout workers that survives worker deaths and changes size while a run goes on (see the
    module docstring). Workers live in numbered slots; `request(n)` (thread-safe: the driver's control thread calls
    it) asks for n workers, and the pool applies it at its next safe point: between chunks, between stream rounds,
    before a weight push, or at the latest every POLL_S seconds while it waits."""

    def __init__(self, workers: list, timeout_s: float = 1800.0, spawn=None, max_restarts: int = 0,
                 chunks_per_worker: int = 1, slots=None):
        self.workers: dict[int, object] = dict(enumerate(workers))  # slot -> actor
        self.timeout_s = timeout_s
        self.spawn = spawn  # slot -> a new actor for it (None: deaths are fatal and the pool cannot grow)
        self.max_restarts = max_restarts
        self.chunks_per_worker = chunks_per_worker
        self.slots = slots  # rollout.placement.Slots: where each slot's actor goes (None: wherever Ray puts it)
        self.version_of = {s: 0 for s in self.workers}
        self.restarts = 0
        self.address: str | None = None  # the weight server starting workers fetch from
        self.version = 0  # the version the last weight push brought every serving worker to
        self.starting: dict = {}  # ref of a starting worker's first weight load -> (slot, deadline): not serving yet
        self.joining: set[int] = set()  # slots whose worker joined on a scale request and is still starting
        self.leaving: set[int] = set()  # slots draining: given no new work, retired once their calls are back
        self.events: list[dict] = []  # joins and leaves since the last take_events()
        # shared with the control thread: the requested size, the slots it may not give a joiner, and its messages
        self._lock = threading.Lock()
        self._scale_lock = threading.Lock()  # one scale request at a time
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()  # ("join", slot, actor) | ("target", n)
        self.target = len(self.workers)
        self._in_use = set(self.workers)
        self._pending_joins = 0  # joins queued in the inbox, not applied yet
        self.asked = self.answered = 0  # requests taken and generations returned, all calls and streams together
        self._fresh: set[int] = set()  # joiners serving that have not returned a generation yet

    @property
    def versions(self) -> list[int]:
        return [self.version_of[s] for s in sorted(self.workers)]

    def serving(self) -> list[int]:
        """Slots that take work now: started, with their weights, not leaving."""
        starting = {slot for slot, _ in self.starting.values()}
        return [s for s in sorted(self.workers) if s not in starting and s not in self.leaving]

    # ---- the Policy interface

    def generate(self, requests: list[GenRequest], sampling: Sampling) -> list[Generation]:
        self._poll()
        self._retire_leavers(busy=set())  # before the split: leavers count for nothing
        count = len(self.workers) - len(self.leaving)
        parts = count * (self.chunks_per_worker if count > 1 else 1)
        queue_ = deque(split_by_load(requests, max(1, parts)))
        idle = deque(self.serving())
        running: dict = {}  # ref -> (worker slot, chunk, deadline)
        out: list[Generation | None] = [None] * len(requests)
        while queue_ or running:
            self._poll()  # scale requests apply between chunks; leavers with nothing running go
            self._retire_leavers(busy={v[0] for v in running.values()})
            while queue_ and idle:
                slot = idle.popleft()
                if slot not in self.serving() or slot in {v[0] for v in running.values()}:
                    continue  # left, or restarted in this slot, since it became idle
                chunk = queue_.popleft()
                seeds = [requests[i].seed if requests[i].seed is not None
                         else None if sampling.seed is None else sampling.seed + i for i in chunk]
                ref = self.workers[slot].generate.remote([(requests[i].prompt, requests[i].n) for i in chunk],
                                                         sampling, seeds)
                running[ref] = (slot, chunk, time.monotonic() + self.timeout_s)
            ref = self._wait_one(running)
            if ref is None:  # nothing finished within POLL_S: look at scale requests again
                continue
            if ref in self.starting:  # a new or replacement worker has its weights: it serves from now on
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
                self._lost(slot, e)  # a replacement starts in the background; the others go on meanwhile
                queue_.appendleft(chunk)  # generated again, by whichever worker is free first
                continue
            for i, gen in zip(chunk, gens):
                out[i] = gen
            self._answered(slot, len(gens))
            if slot in self.leaving:  # it finished its last chunk
                self._retire(slot, "left")
            else:
                idle.append(slot)
        self._retire_leavers(busy=set())
        self.asked += len(requests)
        return out

    def stream(self, steps: int = 8) -> "PoolStream":
        """A Stream (minazr/contracts/stream.py) over the workers' engines: see PoolStream."""
        self._settle()
        return PoolStream(self, steps)

    def load_weights(self, address: str, version: int | None) -> list[dict]:
        """Every serving worker fetches `version` (None: the newest) from the weight server at `address`. Workers
        still joining are not waited for: each fetches the newest weights itself, and again if a push overtook it,
        before it takes any request."""
        self.address = address
        self._poll()
        self._retire_leavers(busy=set())
        self._settle()
        stats: dict[int, dict] = {}
        deadline = time.monotonic() + self.timeout_s
        for slot, ref in [(s, self.workers[s].load_weights.remote(address, version)) for s in self.serving()]:
            try:
                stats[slot] = self._get(ref, slot, "load weights", deadline, deaths=True)
            except DEATHS as e:
                self._replace(slot, e)  # the replacement fetches the newest weights itself
        stats.update(self._settle())
        for slot, s in stats.items():
            self.version_of[slot] = s["version"]
        self.version = max([self.version] + [s["version"] for s in stats.values()])
        return [stats[s] for s in sorted(stats)]

    def score(self, token_ids: list[int], start: int) -> list[list[float]]:
        self._settle()
        return [self._get(self.workers[s].score.remote(token_ids, start), s, "score") for s in self.serving()]

    # ---- lifecycle

    def wait_ready(self) -> list[dict]:
        self._poll()
        self._settle(joiners=True)
        return [self._get(self.workers[s].info.remote(), s, "start") for s in sorted(self.workers)]

    def info(self) -> list[dict]:
        return self.wait_ready()

    def close(self) -> None:
        for w in self.workers.values():
            _kill(w)
        while True:  # joiners asked for but never applied
            try:
                message = self._inbox.get_nowait()
            except queue.Empty:
                break
            if message[0] == "join":
                _kill(message[2])
        if self.slots is not None:
            self.slots.close()
            self.slots = None

    # ---- scaling (docs/cluster.md, "Scaling a running job")

    def request(self, n: int) -> tuple[bool, str]:
        """Ask for n workers (any thread). Growing reserves room for every new worker first, so a count the cluster
        cannot place is refused and the pool stays as it is; the new workers then start their engines in the
        background. Shrinking picks the newest workers to leave. Returns (accepted, one line for the user)."""
        with self._scale_lock:
            with self._lock:
                current = self.target
            if n < 1:
                return False, f"refused: {n} rollout workers; a run needs at least one (it keeps {current})"
            if self.spawn is None:
                return False, "refused: this pool cannot start workers"
            if n == current:
                return True, f"the run already has {n} rollout worker{'s' * (n > 1)}: nothing to do"
            if n < current:
                with self._lock:
                    self.target = n
                self._inbox.put(("target", n))
                return True, (f"{current} -> {n} rollout workers: {current - n} leave; each finishes the call it "
                              "is in, hands its unfinished requests to the workers that stay, and exits")
            with self._lock:
                new = [s for s in range(n + len(self._in_use)) if s not in self._in_use][:n - current]
                self._in_use.update(new)
            actors, placed = [], False
            try:
                if self.slots is not None:
                    self.slots.place(new)  # all or nothing
                placed = True
                for slot in new:
                    actors.append(self.spawn(slot))
            except Exception as e:  # nothing of this request stays: no room, no actor, no slot
                for actor in actors:
                    _kill(actor)
                if placed and self.slots is not None:
                    for slot in new:
                        self.slots.release(slot)
                with self._lock:
                    self._in_use.difference_update(new)
                if isinstance(e, PoolError):
                    return False, f"refused: {e}; the run goes on with {current}"
                raise
            with self._lock:
                self.target += len(new)  # relative: a joiner that failed meanwhile already took itself off
                self._pending_joins += len(new)
            for slot, actor in zip(new, actors):
                self._inbox.put(("join", slot, actor))
            who = (f"worker {new[0]} starts its engine and takes requests once it has" if len(new) == 1 else
                   f"workers {', '.join(map(str, new))} start their engines and take requests once they have")
            return True, f"{current} -> {n} rollout workers: {who} the current weights"

    def take_events(self) -> list[dict]:
        events, self.events = self.events, []
        return events

    def take_counts(self) -> tuple[int, int]:
        """(requests taken, generations returned) since the last call."""
        counts = (self.asked, self.answered)
        self.asked = self.answered = 0
        return counts

    def _poll(self) -> None:
        """Apply what request() queued, and drop joiners past their start deadline (the pool's own thread only)."""
        now = time.monotonic()
        for slot, deadline in list(self.starting.values()):
            if slot in self.joining and deadline < now:
                self._join_failed(slot, PoolError(f"rollout worker {slot} did not start within "
                                                  f"{self.timeout_s:.0f} s (rollout.timeout_s)"))
        while True:
            try:
                message = self._inbox.get_nowait()
            except queue.Empty:
                return
            if message[0] == "join":
                _, slot, actor = message
                with self._lock:
                    self._pending_joins -= 1
                self.workers[slot], self.version_of[slot] = actor, 0
                self.joining.add(slot)
                self._start(slot)
                self._event("join", slot)
            else:
                self._shrink_to(message[1])

    def _shrink_to(self, n: int) -> None:
        staying = [s for s in self.workers if s not in self.leaving]
        starting = {slot for slot, _ in self.starting.values()}
        # workers not serving yet go first (nothing to drain), then the newest
        for slot in sorted(staying, key=lambda s: (s not in starting, -s))[:max(0, len(staying) - n)]:
            if slot in starting:
                self._retire(slot, "left before it served")
            else:
                self.leaving.add(slot)
                self._event("leave", slot)

    def _retire_leavers(self, busy: set) -> None:
        for slot in sorted(self.leaving - busy):
            self._retire(slot, "left")

    def _retire(self, slot: int, why: str) -> None:
        """The worker in `slot` is gone for good: killed, its room released, its slot free for a later joiner."""
        actor = self.workers.pop(slot)
        self.version_of.pop(slot, None)
        self.leaving.discard(slot)
        self.joining.discard(slot)
        self._fresh.discard(slot)
        for ref, (s, _) in list(self.starting.items()):
            if s == slot:
                del self.starting[ref]
        _kill(actor)
        if self.slots is not None:
            self.slots.release(slot)
        with self._lock:
            self._in_use.discard(slot)
        self._event("retired", slot, why)

    def _event(self, kind: str, slot: int, why: str = "", **extra) -> None:
        self.events.append({"event": kind, "worker": slot, "why": why, "time": time.time(),
                            "workers": len(self.workers) - len(self.leaving), **extra})

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

    def _lost(self, slot: int, error: Exception) -> None:
        """The worker in `slot` died: a leaver is just gone; any other is replaced."""
        if slot in self.leaving:
            self._retire(slot, f"died while leaving ({root_cause(error)})")
        else:
            self._replace(slot, error)

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
        self._start(slot)

    def _start(self, slot: int) -> None:
        w = self.workers[slot]
        ref = w.load_weights.remote(self.address, None) if self.address is not None else w.info.remote()
        self.starting[ref] = (slot, time.monotonic() + self.timeout_s)

    def _started(self, ref) -> tuple[int, dict] | None:
        """(slot, load stats) of a worker that finished starting; None if it died (replaced), failed to join
        (retired: the run goes on without it), or fetched weights a push has since overtaken (fetching again)."""
        slot, _ = self.starting.pop(ref)
        try:
            stats = self._get(ref, slot, "start", deaths=True)
        except (PoolError, *DEATHS) as e:
            if slot in self.joining:
                self._join_failed(slot, e)
                return None
            if isinstance(e, PoolError):
                raise
            self._replace(slot, e)
            return None
        if self.address is not None and stats.get("version", 0) < self.version:  # a push overtook its fetch
            self._start(slot)
            return None
        self.version_of[slot] = stats.get("version", 0)
        if slot in self.joining:
            self.joining.discard(slot)
            self._fresh.add(slot)
            self._event("serving", slot, node_id=stats.get("node_id"), version=stats.get("version", 0))
        return slot, stats

    def _answered(self, slot: int, count: int) -> None:
        """`count` generations came back from `slot`; a joiner's first ones are an event (the time a scale
        request takes to pay off: minazr bench's scale stage)."""
        self.answered += count
        if count and slot in self._fresh:
            self._fresh.discard(slot)
            self._event("first_answer", slot)

    def _join_failed(self, slot: int, error: Exception) -> None:
        log.warning("rollout worker %d did not join (%s); the run goes on with the others", slot,
                    error if isinstance(error, PoolError) else root_cause(error))
        self._retire(slot, f"failed to join: {error if isinstance(error, PoolError) else root_cause(error)}")
        staying = sum(s not in self.leaving for s in self.workers)
        with self._lock:  # what the run can still have; a shrink asked for meanwhile may already be lower
            self.target = min(self.target, staying + self._pending_joins)

    def _settle(self, joiners: bool = False) -> dict[int, dict]:
        """Wait until every replacement (and with `joiners`, every joining worker) serves; their stats by slot."""
        done = {}
        while any(joiners or slot not in self.joining for slot, _ in self.starting.values()):
            ref = self._wait_one({}, only=None if joiners else set(self.workers) - self.joining)
            if ref is None:
                continue
            started = self._started(ref)
            if started is not None:
                done[started[0]] = started[1]
        return done

    def _wait_one(self, running: dict, only: set | None = None):
        """The first ready ref among running calls and starting workers (those in `only`, if given); None after
        POLL_S with nothing ready. A deadline passed is a PoolError, except for a joining worker, which is
        retired (the run goes on without it)."""
        starting = {r: (slot, None, d) for r, (slot, d) in self.starting.items() if only is None or slot in only}
        pending = {**running, **starting}
        if not pending:
            raise PoolError("no rollout worker is serving or starting")
        first = min(pending.values(), key=lambda v: v[2])
        left = first[2] - time.monotonic()
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=max(0.0, min(left, POLL_S)))
        if ready:
            return ready[0]
        if left > POLL_S:
            return None
        if first[1] is None and first[0] in self.joining:
            self._join_failed(first[0], PoolError(f"rollout worker {first[0]} did not start within "
                                                  f"{self.timeout_s:.0f} s (rollout.timeout_s)"))
            return None
        what = "start" if first[1] is None else "finish a generate call"
        raise PoolError(f"rollout worker {first[0]} did not {what} within {self.timeout_s:.0f} s "
                        f"(rollout.timeout_s)")


def _kill(actor) -> None:
    try:
        ray.kill(actor)
    except Exception:  # already gone: nothing to kill
        pass


class PoolStream:
    """Streaming generation over the pool: every worker's engine keeps its own running batch.

    add() queues a request for the worker with the least unfinished work. next() waits for the advance calls in
    flight (each: add the queued requests, run `steps` engine steps), at once sends the next round (so the engines
    keep decoding while the caller validates and judges what came back), and returns the requests that finished.
    Requests added after a next() therefore join the round after the one it started: rounds are fixed in number of
    engine steps and the workers move in lockstep, so the same adds give the same completions run after run.

    A worker that dies mid-stream is replaced as in generate(); its unfinished requests start again on the others
    (their seeds make them the same requests, though not the same batches), nothing is lost or returned twice.
    A worker that leaves (a scale request) does the same at the end of a round, without dying: what it finished in
    that round is returned, what it had not is cancelled there and started again on the workers that stay. A worker
    that joins takes new requests from the round after it has the current weights.
    """

    def __init__(self, pool: RolloutPool, steps: int):
        self.pool, self.steps = pool, max(1, steps)
        self.queued: dict[int, list[tuple]] = defaultdict(list)  # per slot: (id, prompt, n, seed, sampling)
        self.assigned: dict[int, dict] = defaultdict(dict)  # per slot: id -> the add, until it finishes
        self.keys: dict[str, object] = {}  # request id -> caller's key
        self.flight: dict = {}  # ref -> (slot, deadline)
        self.counter = 0

    def add(self, key, request: GenRequest, sampling: Sampling) -> None:
        rid = f"r{self.counter}"
        self.counter += 1
        self.keys[rid] = key
        self.pool.asked += 1
        self._assign((rid, request.prompt, request.n, request.seed, sampling))

    def busy(self) -> bool:
        return bool(self.flight) or any(self.queued.values()) or any(self.assigned.values())

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
            self.pool._answered(slot, len(finished))
        self._scale()  # nothing is in flight here: the one point where a worker can leave without a race
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
        for slot, w in self.pool.workers.items():
            if self.assigned.get(slot):
                try:
                    ray.get(w.cancel.remote(), timeout=self.pool.timeout_s)
                except Exception:
                    pass
        self.queued.clear()
        self.assigned.clear()

    def _launch(self) -> None:
        for slot in self._serving():
            if self.queued.get(slot) or self.assigned.get(slot):
                adds, self.queued[slot] = self.queued[slot], []
                ref = self.pool.workers[slot].advance.remote(adds, self.steps)
                self.flight[ref] = (slot, time.monotonic() + self.pool.timeout_s)

    def _serving(self) -> list[int]:
        if self.pool.starting:  # workers that have loaded their weights serve from now on
            ready, _ = ray.wait(list(self.pool.starting), num_returns=len(self.pool.starting), timeout=0)
            for ref in ready:
                self.pool._started(ref)
        serving = self.pool.serving()
        if not serving:  # every worker is starting: wait for them
            self.pool._settle(joiners=True)
            serving = self.pool.serving()
        return serving

    def _assign(self, add: tuple) -> None:
        slot = min(self._serving(), key=lambda s: (sum(a[2] for a in self.assigned[s].values()), s))
        self.assigned[slot][add[0]] = add
        self.queued[slot].append(add)

    def _scale(self) -> None:
        """Apply scale requests; each leaving worker hands its unfinished requests to the workers that stay."""
        self.pool._poll()
        for slot in sorted(self.pool.leaving):
            moved = list(self.assigned.pop(slot, {}).values())
            self.queued.pop(slot, None)
            if moved:  # its engine's copies stop now; the actor is killed next anyway
                try:
                    ray.get(self.pool.workers[slot].cancel.remote(), timeout=self.pool.timeout_s)
                except Exception:  # dead or stuck: killing it below ends them too
                    pass
            self.pool._retire(slot, "left")
            for add in moved:
                self._assign(add)

    def _lost(self, slot: int, error: Exception) -> None:
        """The worker in `slot` died: replace it (a leaver is just gone), and hand its unfinished requests to the
        workers still serving."""
        if not is_death(error):
            raise PoolError(f"rollout worker {slot} failed to generate: {root_cause(error)}") from None
        lost = list(self.assigned.pop(slot, {}).values())
        self.queued.pop(slot, None)
        self.pool._lost(slot, error)
        for add in lost:
            self._assign(add)
