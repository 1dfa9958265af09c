"""Updates submitted to the real Ray learner actor without waiting apply one at a time, in submission order.

Ray runs the calls of a threaded actor (max_concurrency > 1) on a thread pool, in no particular order; before the
fix the learner actor had two threads, so with `train.max_staleness >= 1` two `train_step` calls could share one
model and optimizer (gradients summed across updates, a publish in the middle of a step). Here four updates go
out at once, to the actor `minazr train` starts and to one with eight threads, and both must end exactly where
the same updates applied one after another in this process end: same version, same parameters.
"""

import random

import pytest
import torch
from conftest import tiny_llama

from learner.core import LearnerCore
from minazr.driver.config import LearnerConfig, RolloutConfig

pytestmark = pytest.mark.slow
VOCAB = 48


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model", VOCAB, hidden=64, positions=256)


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


CFG = LearnerConfig(autocast_bf16=False, grad_clip=0.0, lr=1e-2, threads=1)
PROBE = list(range(1, 40))


def batches(n: int) -> list[list[dict]]:
    """n batches of samples long enough that an update takes a while (so concurrent ones would overlap)."""
    rng = random.Random(0)
    out = []
    for _ in range(n):
        batch = []
        for _ in range(6):
            prompt = [rng.randrange(VOCAB) for _ in range(rng.randrange(20, 60))]
            completion = [rng.randrange(VOCAB) for _ in range(rng.randrange(60, 120))]
            batch.append({"prompt_ids": prompt, "completion_ids": completion, "advantage": rng.uniform(-2, 2),
                          "token_weight": 1 / 600, "logprobs": [-3.9] * len(completion)})
        out.append(batch)
    return out


def sequential(path: str, updates: list[list[dict]]) -> list[float]:
    core = LearnerCore(path, CFG, publish_dtype="float32")
    try:
        for v, batch in enumerate(updates, start=1):
            assert core.train_step(batch, v)["version"] == v
        return core.score(PROBE, 1)
    finally:
        core.close()


@pytest.mark.parametrize("threads", [None, 8])
def test_updates_submitted_at_once_apply_in_order(ray_local, tiny_model, threads):
    from learner.actor import Learner, start_learner

    updates = batches(4)
    if threads is None:  # the actor `minazr train` starts
        actor = start_learner(tiny_model, CFG, RolloutConfig(dtype="float32"), seed=0)
    else:
        actor = Learner.options(max_concurrency=threads).remote(tiny_model, CFG, "float32", 64.0, seed=0,
                                                                 loopback=True)
    try:
        refs = [actor.train_step.remote(batch, v) for v, batch in enumerate(updates, start=1)]
        if threads is None:  # single-threaded: a publish submitted last runs last, on the final weights
            assert ray_local.get(actor.publish.remote(), timeout=600)["version"] == 4
        versions = [m["version"] for m in ray_local.get(refs, timeout=600)]
        assert versions == [1, 2, 3, 4]
        got = ray_local.get(actor.score.remote(PROBE, 1), timeout=60)
    finally:
        ray_local.kill(actor)
    want = sequential(tiny_model, updates)
    assert torch.allclose(torch.tensor(got), torch.tensor(want), atol=1e-5), \
        max(abs(a - b) for a, b in zip(got, want))


def test_an_update_behind_the_learner_is_refused(tiny_model):
    core = LearnerCore(tiny_model, CFG, publish_dtype="float32")
    try:
        core.train_step(batches(1)[0], 1)
        with pytest.raises(ValueError, match="already at version 1"):
            core.train_step(batches(1)[0], 1)
        with pytest.raises(TimeoutError, match="waited"):
            core.train_step(batches(1)[0], 3, wait_s=0.1)
    finally:
        core.close()
