"""Advantage estimators and loss weighting: pure functions over rewards and the keys that group them.

One signature for every estimator: `(rewards, prompt_ids, task_roles) -> advantages`.
- grpo:       whiten within each prompt's group of n samples (mean and std of the group).
- trr++:      AZR's Task-Relative REINFORCE++: whiten within each (task, role) pair, a baseline per pair
              (six for the three code tasks, eight with math).
- batch_mean: the seed's baseline: reward minus the batch mean, no scaling.
A group whose rewards are all equal (or a group of one) gets advantage 0, never NaN.
"""

import math
from collections import defaultdict
from collections.abc import Hashable, Sequence

EPS = 1e-6


def _whiten(rewards: Sequence[float], keys: Sequence[Hashable], scale: bool = True) -> list[float]:
    if len(rewards) != len(keys):
        raise ValueError("rewards and keys differ in length")
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        groups[k].append(i)
    out = [0.0] * len(rewards)
    for idx in groups.values():
        vals = [rewards[i] for i in idx]
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))
        for i in idx:
            centered = rewards[i] - mean
            out[i] = (centered / (std + EPS) if std > EPS else 0.0) if scale else centered
    return out


def grpo(rewards, prompt_ids, task_roles) -> list[float]:
    return _whiten(rewards, prompt_ids)


def trr_plus_plus(rewards, prompt_ids, task_roles) -> list[float]:
    return _whiten(rewards, task_roles)


def batch_mean(rewards, prompt_ids, task_roles) -> list[float]:
    return _whiten(rewards, [0] * len(rewards), scale=False)


ESTIMATORS = {"grpo": grpo, "trr++": trr_plus_plus, "batch_mean": batch_mean}


def token_weights(lengths: Sequence[int], level: str) -> list[float]:
    """Per-token loss weight of each sample, so that the loss is sum(weight * token_loss) over all tokens.

    token:    every token of the batch counts the same (1 / total tokens): DAPO/AZR's token-mean.
    sequence: every sample counts the same, its tokens share it (1 / (n_samples * its length)): GRPO's original.
    """
    if level == "token":
        total = sum(lengths)
        return [1.0 / total if total else 0.0 for _ in lengths]
    if level == "sequence":
        n = len(lengths)
        return [1.0 / (n * length) if length else 0.0 for length in lengths]
    raise ValueError(f"unknown weighting {level!r} (expected 'token' or 'sequence')")
