"""Learner: the Ray actor around LearnerCore, placed where `learner.num_cpus` / `learner.num_gpus` say."""

import ray

from learner.core import LearnerCore


class _NodeLearner(LearnerCore):
    """Binds the weight server to the address of the node the actor landed on (not to all interfaces)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, host=ray.util.get_node_ip_address(), **kwargs)


Learner = ray.remote(_NodeLearner)


def start_learner(model_path: str, cfg, rollout_cfg, seed: int, optimizer_state: str | None = None):
    actor = Learner.options(num_cpus=cfg.num_cpus, num_gpus=cfg.num_gpus, max_concurrency=2,
                            runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}})
    return actor.remote(str(model_path), cfg, rollout_cfg.dtype, rollout_cfg.weight_bucket_mb, seed=seed,
                        optimizer_state=optimizer_state)
