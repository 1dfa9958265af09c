"""RolloutPool scheduling and failure handling with real Ray actors standing in for engines (no vLLM): load-based
chunks, a slow worker taking fewer chunks, a process that dies mid-call, a hang that becomes an error; and the
streaming pool (PoolStream): follow-ups added mid-stream, balance by load, a worker dying mid-stream."""

import os
import sys
import time

import pytest

from minazr.contracts.policy import Completion, GenRequest, Generation, PoolError, Sampling
from rollout.worker import RolloutPool, split_by_load


def test_split_by_load_balances_completions_and_covers_every_request_once():
    reqs = [GenRequest(f"p{i}", n) for i, n in enumerate([8, 1, 1, 4, 4, 2, 2, 2])]
    parts = split_by_load(reqs, 3)
    assert sorted(i for p in parts for i in p) == list(range(8))
    assert sorted(sum(reqs[i].n for i in p) for p in parts) == [8, 8, 8]
    assert split_by_load(reqs[:2], 5) == [[0], [1]]  # empty parts are dropped
    assert split_by_load([], 2) == []


class _FakeEngine:
    """Answers each request with its prompt; `delay` seconds per call; dies (os._exit) or hangs on request."""

    def __init__(self, name: str, delay: float = 0.0, die_on_call: int = 0, hang: bool = False, broken=False,
                 gate: str | None = None):
        if broken:
            raise ValueError(f"cannot load model for {name}")
        self.name, self.delay, self.die_on_call, self.hang, self.calls = name, delay, die_on_call, hang, 0
        self.gate = gate  # a file that must exist before this engine has its weights (a slow replacement)

    def generate(self, requests, sampling, seeds=None):
        self.calls += 1
        if self.calls == self.die_on_call:
            os._exit(1)  # the process dies mid-call, as with SIGKILL or the OOM killer
        time.sleep(3600 if self.hang else self.delay)
        return [Generation([0], [Completion(f"{self.name}:{p}", [1] * n, [0.0] * n) for _ in range(n)],
                           getattr(self, "version", 0)) for p, n in requests]

    def advance(self, adds, steps):
        """Streaming: a request of prompt 'pK' needs K + 1 engine steps; `steps` steps run per call."""
        self.calls += 1
        if self.calls == self.die_on_call:
            os._exit(1)
        self.running = getattr(self, "running", {})
        for rid, prompt, n, seed, sampling in adds:
            self.running[rid] = [int(prompt[1:]) + 1, prompt, n]
        done = []
        for rid, job in list(self.running.items()):
            job[0] -= steps
            if job[0] <= 0:
                del self.running[rid]
                done.append((rid, Generation([0], [Completion(f"{self.name}:{job[1]}", [1], [0.0])] * job[2],
                                             getattr(self, "version", 0))))
        return done

    def cancel(self):
        self.running = {}
        return 0

    def info(self):
        while self.gate and not os.path.exists(self.gate):
            time.sleep(0.05)
        return {"name": self.name, "pid": os.getpid(), "version": getattr(self, "version", 0)}

    def load_weights(self, address, version):
        """`address` is a file holding the newest version number; it is read before the gate (a fetch that a
        push can overtake while this engine is still starting)."""
        newest = int(open(address).read()) if address and os.path.exists(address) else 0
        fetched = newest if version is None else version
        if self.gate:
            open(f"{self.gate}.read", "w").close()  # tells the test this fetch has read its version
        info = self.info()
        self.version = fetched
        return {**info, "version": fetched}


@pytest.fixture(scope="module")
def ray_fakes():
    import ray
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray.remote(_FakeEngine).options(num_cpus=0, max_concurrency=1)
    ray.shutdown()


def _requests(k):
    return [GenRequest(f"p{i}", 2) for i in range(k)]


def test_slow_worker_takes_fewer_chunks(ray_fakes):
    fast, slow = ray_fakes.remote("fast"), ray_fakes.remote("slow", delay=1.5)
    pool = RolloutPool([fast, slow], timeout_s=60, chunks_per_worker=4)
    pool.wait_ready()  # both actors up: their start-up times do not decide who takes which chunk
    gens = pool.generate(_requests(16), Sampling())
    owners = [g.completions[0].text.split(":")[0] for g in gens]
    assert [g.completions[0].text.split(":")[1] for g in gens] == [f"p{i}" for i in range(16)]  # request order
    # 8 chunks of 2 requests: the slow one takes its first and, at most, one more while it sleeps 1.5 s per call
    # (a fixed equal split would have given it 4 chunks, 8 requests)
    assert owners.count("fast") >= 12 and owners.count("slow") <= 4, owners


def test_dead_worker_is_replaced_and_its_chunk_regenerated(ray_fakes):
    spawned = []

    def spawn(slot):
        spawned.append(slot)
        return ray_fakes.remote(f"new{slot}")

    pool = RolloutPool([ray_fakes.remote("a"), ray_fakes.remote("b", die_on_call=1)], timeout_s=60, spawn=spawn,
                       max_restarts=1, chunks_per_worker=2)
    gens = pool.generate(_requests(8), Sampling())
    assert spawned == [1] and pool.restarts == 1
    assert [len(g.completions) for g in gens] == [2] * 8  # every request exactly once, none lost
    assert all(not g.completions[0].text.startswith("b:") for g in gens)
    assert pool.info()[1]["name"] == "new1"

    pool.workers[0] = ray_fakes.remote("c", die_on_call=1)
    with pytest.raises(PoolError, match="rollout worker 0 died .* rollout.max_restarts=1 replacements are used up"):
        pool.generate(_requests(4), Sampling())


def test_survivors_take_the_lost_chunk_while_the_replacement_starts(ray_fakes, tmp_path):
    gate = tmp_path / "replacement-may-finish-starting"
    pool = RolloutPool([ray_fakes.remote("a"), ray_fakes.remote("b", die_on_call=1)], timeout_s=60,
                       spawn=lambda slot: ray_fakes.remote(f"new{slot}", gate=str(gate)), max_restarts=1,
                       chunks_per_worker=2)
    pool.wait_ready()
    gens = pool.generate(_requests(8), Sampling())  # returns while the replacement is still blocked on the gate
    assert not gate.exists() and pool.starting, "the replacement should still be starting"
    assert [g.completions[0].text for g in gens] == [f"a:p{i}" for i in range(8)]  # the survivor did it all
    gate.touch()
    assert pool.wait_ready()[1]["name"] == "new1" and not pool.starting  # and then the replacement serves
    gens = pool.generate(_requests(8), Sampling())
    assert {g.completions[0].text.split(":")[0] for g in gens} == {"a", "new1"}


def test_hung_worker_becomes_an_error_naming_it(ray_fakes):
    pool = RolloutPool([ray_fakes.remote("ok"), ray_fakes.remote("stuck", hang=True)], timeout_s=2)
    pool.wait_ready()  # both actors up: on a loaded machine a slow actor start must not pass for the hang
    t0 = time.perf_counter()
    with pytest.raises(PoolError, match=r"rollout worker 1 did not finish a generate call within 2 s"):
        pool.generate(_requests(4), Sampling())
    assert time.perf_counter() - t0 < 30
    pool.close()


def test_a_worker_that_cannot_start_is_one_line(ray_fakes):
    pool = RolloutPool([ray_fakes.remote("ok"), ray_fakes.remote("bad", broken=True)], timeout_s=30)
    with pytest.raises(PoolError, match=r"^rollout worker 1 failed to start: ValueError: cannot load model for bad$"):
        pool.wait_ready()


def _drain(stream, follow_up=lambda key: None) -> dict:
    """Run a stream dry; every key must come back exactly once. follow_up(key) -> a key to add, or None."""
    got = {}
    while stream.busy():
        for key, gen in stream.next():
            assert key not in got, key
            got[key] = gen
            extra = follow_up(key)
            if extra is not None:
                stream.add(extra, GenRequest(f"p{extra[1]}", 1), Sampling())
    return got


def test_stream_returns_follow_ups_added_mid_stream_and_balances_load(ray_fakes):
    pool = RolloutPool([ray_fakes.remote("a"), ray_fakes.remote("b")], timeout_s=60)
    stream = pool.stream(steps=2)
    for i in range(8):
        stream.add(("first", i), GenRequest(f"p{i}", 2), Sampling())
    # each first request, once finished, asks for a follow-up (as a valid proposal asks for its solves)
    got = _drain(stream, lambda key: ("again", key[1]) if key[0] == "first" else None)
    assert sorted(got) == sorted([("first", i) for i in range(8)] + [("again", i) for i in range(8)])
    assert all(len(got[("first", i)].completions) == 2 for i in range(8))
    owners = [g.completions[0].text.split(":")[0] for g in got.values()]
    assert {owners.count("a"), owners.count("b")} == {8}  # assigned by unfinished load, not all to one worker
    assert not stream.busy() and pool.generate(_requests(2), Sampling())  # the pool serves plain calls again


def test_stream_survives_a_worker_dying_mid_stream(ray_fakes):
    spawned = []

    def spawn(slot):
        spawned.append(slot)
        return ray_fakes.remote(f"new{slot}")

    pool = RolloutPool([ray_fakes.remote("a"), ray_fakes.remote("b", die_on_call=2)], timeout_s=60, spawn=spawn,
                       max_restarts=1)
    stream = pool.stream(steps=1)
    for i in range(6):
        stream.add(i, GenRequest(f"p{i + 2}", 1), Sampling())
    got = _drain(stream)
    assert spawned == [1] and sorted(got) == list(range(6))  # nothing lost, nothing twice
    assert not any(g.completions[0].text.startswith("b:") for g in got.values())  # b died before finishing any


# ---- scaling a running pool (`minazr scale`; the real engines and the CLI: tests/test_scaling.py)


def _versioned(tmp_path, version: int) -> str:
    """A fake weight server: the file the fakes read the newest version from."""
    path = tmp_path / "newest"
    path.write_text(str(version))
    return str(path)


def _owners(gens) -> list[str]:
    return [g.completions[0].text.split(":")[0] for g in gens]


def test_a_joiner_takes_requests_only_with_the_current_weights(ray_fakes, tmp_path):
    pool = RolloutPool([ray_fakes.remote("a")], timeout_s=60, spawn=lambda slot: ray_fakes.remote(f"j{slot}"))
    address = _versioned(tmp_path, 3)
    pool.load_weights(address, 3)
    assert pool.request(2) == (True, "1 -> 2 rollout workers: worker 1 starts its engine and takes requests once "
                                     "it has the current weights")
    pool.wait_ready()  # the joiner started and fetched the newest weights
    gens = pool.generate(_requests(8), Sampling())
    assert set(_owners(gens)) == {"a", "j1"} and {g.version for g in gens} == {3}
    assert [e["event"] for e in pool.take_events()] == ["join", "serving", "first_answer"]
    assert pool.request(2)[0] and pool.target == 2  # the same count again: nothing to do


def test_a_push_that_overtakes_a_joiners_fetch_is_fetched_again(ray_fakes, tmp_path):
    """The joiner reads version 1 while it starts; the run pushes version 2 meanwhile; the joiner must not serve
    version 1: it fetches again before its first request."""
    gate = tmp_path / "joiner-may-finish-starting"
    pool = RolloutPool([ray_fakes.remote("a")], timeout_s=60,
                       spawn=lambda slot: ray_fakes.remote(f"j{slot}", gate=str(gate)))
    address = _versioned(tmp_path, 1)
    pool.load_weights(address, 1)
    assert pool.request(2)[0]
    gens = pool.generate(_requests(4), Sampling())  # applies the request; the joiner is stuck at its gate
    assert _owners(gens) == ["a"] * 4 and pool.starting
    while not os.path.exists(f"{gate}.read"):  # the joiner has read version 1 and waits at the gate
        time.sleep(0.05)
    _versioned(tmp_path, 2)
    assert [s["version"] for s in pool.load_weights(address, 2)] == [2]  # not waiting for the joiner
    gate.touch()
    gens = pool.generate(_requests(8), Sampling()) if pool.wait_ready() else []
    assert "j1" in _owners(gens) and {g.version for g in gens} == {2}
    assert pool.versions == [2, 2]


def test_shrinking_mid_stream_hands_back_unfinished_requests_once(ray_fakes):
    pool = RolloutPool([ray_fakes.remote("a"), ray_fakes.remote("b")], timeout_s=60,
                       spawn=lambda slot: ray_fakes.remote(f"j{slot}"))
    stream = pool.stream(steps=1)
    for i in range(8):
        stream.add(i, GenRequest(f"p{i + 3}", 1), Sampling())  # 4-11 steps each: none finishes in round 1
    stream.next()
    assert pool.request(1)[0]
    got = _drain(stream)  # every key exactly once (asserted in _drain)
    assert sorted(got) == list(range(8)) and set(_owners(got.values())) == {"a"}  # b left before finishing any
    assert sorted(pool.workers) == [0] and pool.target == 1
    assert [(e["event"], e["worker"]) for e in pool.take_events()] == [("leave", 1), ("retired", 1)]


def test_a_leaver_finishes_its_chunk_and_a_push_skips_it(ray_fakes, tmp_path):
    """Shrink while both workers generate: the leaver's chunk is kept (not generated twice); the weight push that
    follows goes to the worker that stays only."""
    pool = RolloutPool([ray_fakes.remote("a", delay=0.5), ray_fakes.remote("b", delay=2.5)], timeout_s=60,
                       spawn=lambda slot: ray_fakes.remote(f"j{slot}"), chunks_per_worker=2)
    pool.wait_ready()
    import threading

    threading.Timer(0.2, lambda: pool.request(1)).start()  # arrives while b is in its first chunk
    gens = pool.generate(_requests(8), Sampling())
    assert [len(g.completions) for g in gens] == [2] * 8 and _owners(gens).count("b") == 2  # one chunk of b's
    address = _versioned(tmp_path, 5)
    assert [s["name"] for s in pool.load_weights(address, None)] == ["a"] and pool.versions == [5]


def test_a_scale_request_while_a_worker_dies(ray_fakes):
    """b dies on its first call just as a third worker is asked for: b is replaced, the joiner joins, every
    request is answered once."""
    pool = RolloutPool([ray_fakes.remote("a"), ray_fakes.remote("b", die_on_call=1)], timeout_s=60,
                       spawn=lambda slot: ray_fakes.remote(f"n{slot}"), max_restarts=1, chunks_per_worker=2)
    pool.wait_ready()
    assert pool.request(3)[0]
    gens = pool.generate(_requests(12), Sampling())
    assert [len(g.completions) for g in gens] == [2] * 12 and "b" not in _owners(gens)
    pool.wait_ready()
    assert sorted(pool.workers) == [0, 1, 2] and pool.restarts == 1
    assert set(_owners(pool.generate(_requests(12), Sampling()))) == {"a", "n1", "n2"}


def test_refused_counts_leave_the_pool_as_it_is(ray_fakes):
    class NoRoom:
        def place(self, slots):
            raise PoolError("no room for 1 more rollout worker(s) of {'CPU': 1.0}")

        def release(self, slot):
            raise AssertionError("nothing was placed")

        def close(self):
            pass

    fixed = RolloutPool([ray_fakes.remote("a")], timeout_s=60)
    assert fixed.request(2) == (False, "refused: this pool cannot start workers")
    pool = RolloutPool([ray_fakes.remote("a")], timeout_s=60, spawn=lambda slot: ray_fakes.remote("x"),
                       slots=NoRoom())
    assert pool.request(0) == (False, "refused: 0 rollout workers; a run needs at least one (it keeps 1)")
    ok, message = pool.request(2)
    assert not ok and message == ("refused: no room for 1 more rollout worker(s) of {'CPU': 1.0}; the run goes on "
                                  "with 1")
    assert pool.target == 1 and pool.generate(_requests(2), Sampling()) and sorted(pool.workers) == [0]
    assert not pool.take_events()


def test_a_joiner_that_cannot_start_is_dropped_and_the_run_goes_on(ray_fakes):
    pool = RolloutPool([ray_fakes.remote("a")], timeout_s=60,
                       spawn=lambda slot: ray_fakes.remote("bad", broken=True))
    assert pool.request(2)[0]
    gens = pool.generate(_requests(4), Sampling())
    pool.wait_ready()
    assert _owners(gens) == ["a"] * 4 and sorted(pool.workers) == [0] and pool.target == 1
    events = pool.take_events()
    assert [e["event"] for e in events] == ["join", "retired"] and "cannot load model for bad" in events[1]["why"]


def test_a_request_that_fails_halfway_leaves_nothing_behind(ray_fakes):
    def spawn(slot):
        if slot == 2:
            raise RuntimeError("cannot create actor")
        return ray_fakes.remote(f"j{slot}")

    pool = RolloutPool([ray_fakes.remote("a")], timeout_s=60, spawn=spawn)
    with pytest.raises(RuntimeError, match="cannot create actor"):
        pool.request(3)  # slot 1's actor is made, slot 2's fails: both are undone
    assert pool.target == 1 and pool._in_use == {0} and pool._inbox.empty()
    assert pool.request(2)[0] and pool.wait_ready() and sorted(pool.workers) == [0, 1]
