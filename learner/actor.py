"""Learner: the Ray actor around LearnerCore, placed where `learner.num_cpus` / `learner.num_gpus` say."""

import os

import ray

from learner.core import LearnerCore
from minazr.contracts.dtypes import engine_dtype


class _NodeLearner(LearnerCore):
    """Binds the weight server to the address of the node the actor landed on, or to loopback when the whole
    cluster is one machine; never to all interfaces."""

    def __init__(self, *args, loopback: bool = False, **kwargs):
        super().__init__(*args, host="127.0.0.1" if loopback else ray.util.get_node_ip_address(), **kwargs)

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def pid(self) -> int:
        return os.getpid()


Learner = ray.remote(_NodeLearner)


def start_learner(model_path: str, cfg, rollout_cfg, seed: int, optimizer_state: str | None = None):
    """The learner actor, single-threaded: Ray then runs its calls one at a time in submission order, so updates
    sent ahead (train.max_staleness >= 1), publishes and saves never overlap (LearnerCore also orders numbered
    updates itself, for any actor with more threads)."""
    actor = Learner.options(num_cpus=cfg.num_cpus, num_gpus=cfg.num_gpus, max_concurrency=1,
                            runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}})
    publish = engine_dtype(rollout_cfg.dtype, rollout_cfg.num_gpus > 0)  # what the engines load (auto decided)
    return actor.remote(str(model_path), cfg, publish, rollout_cfg.weight_bucket_mb, seed=seed,
                        optimizer_state=optimizer_state, loopback=single_machine())


def single_machine() -> bool:
    """True when every live Ray node runs on this very machine (then loopback reaches them all)."""
    addresses = {n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")}
    return addresses == {ray.util.get_node_ip_address()}
