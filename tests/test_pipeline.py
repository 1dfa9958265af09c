"""max_staleness bounds the version lag of every trained sample (fake learner and pool: pure scheduling logic)."""

import pytest

from minazr.driver.pipeline import Pipeline
from minazr.contracts.policy import ScoredSample


class FakeLearner:
    """Applies updates in submission order, like the Ray actor; records the version each batch met."""

    def __init__(self):
        self.version = 0
        self.trained: list[tuple[int, list[int]]] = []  # (version before the update, sample versions)
        self.queue = []

    def submit(self, batch, version):
        learner = self

        class Handle:
            def result(self_inner):
                while learner.queue:
                    b, v = learner.queue.pop(0)
                    learner.trained.append((learner.version, [x["version"] for x in b]))
                    learner.version = v
                return {"learner/tokens": 1}

        self.queue.append(([{**x, "version": x["prompt_ids"][0]} for x in batch], version))
        return Handle()


class FakePool:
    def __init__(self, learner):
        self.learner = learner
        self.loads = 0

    def load_weights(self, version):
        self.loads += 1
        return [{"version": self.learner.version}]


def sample(version):
    return ScoredSample(task="math", role="solve", prompt_id=0, prompt="", completion="x",
                        prompt_token_ids=[version], completion_token_ids=[1, 2], logprobs=[-1.0, -1.0],
                        version=version, advantage=1.0)


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_trained_samples_are_never_more_than_k_versions_old(k):
    learner = FakeLearner()
    pool = FakePool(learner)
    pipe = Pipeline(learner, pool, max_staleness=k)
    logged = []
    for step in range(12):
        logged += pipe.before_generate()
        assert len(pipe.pending) <= k
        served = pipe.served  # the workers generate with this version
        pipe.submit(step, [sample(served) for _ in range(3)], {})
    logged += pipe.drain()
    assert [s for s, _ in logged] == list(range(12))  # every step logged once, in order
    lags = [before - v for before, versions in learner.trained for v in versions]
    assert len(lags) == 36 and max(lags) <= k
    if k > 0:
        assert max(lags) == k  # generation really overlapped the updates
    assert all(m["version_lag/max"] <= k for _, m in logged)


def test_samples_too_stale_are_dropped_and_counted():
    learner = FakeLearner()
    pipe = Pipeline(learner, FakePool(learner), max_staleness=0)
    pipe.submit(0, [sample(0)], {})
    pipe.drain()
    pipe.submit(1, [sample(0), sample(1)], {})  # one sample from the old version slipped in
    (_, m), = pipe.drain()
    assert m["train/dropped_stale"] == 1 and learner.trained[-1] == (1, [1])
