"""Advantage estimators and loss weighting: pure functions over rewards and the keys that group them.

One signature for every estimator: `(rewards, prompt_ids, task_roles, baseline=None) -> advantages` (`baseline`: the
running state of the estimators that keep one, a RunningBaseline; the others ignore it).
- grpo:       whiten within each prompt's group of n samples (mean and std of the group).
- trr++:      AZR's Task-Relative REINFORCE++: whiten within each (task, role) pair, a baseline per pair
              (six for the three code tasks, eight with math).
- batch_mean: the seed's baseline: reward minus the batch mean, no scaling.
- prompt+running: solver answers whitened within their prompt's group (GRPO), so a prompt the model always
              solves earns nothing (under TRR++'s one baseline per task, experiment 2's memorised prompts took 45%
              of the positive advantage); proposals get reward minus a running mean of their task's proposer
              rewards (SPIRAL), so a step whose proposals all score the same is still compared with the past.
A group whose rewards are all equal (or a group of one) gets advantage 0, never NaN: the learner skips such
samples (a flat group is dropped, as DAPO does).
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


def grpo(rewards, prompt_ids, task_roles, baseline=None) -> list[float]:
    return _whiten(rewards, prompt_ids)


def trr_plus_plus(rewards, prompt_ids, task_roles, baseline=None) -> list[float]:
    return _whiten(rewards, task_roles)


def batch_mean(rewards, prompt_ids, task_roles, baseline=None) -> list[float]:
    return _whiten(rewards, [0] * len(rewards), scale=False)


class RunningBaseline:
    """A running mean reward per key (a task's proposer role), decayed by `decay` each step it is seen. Its state
    is part of a checkpoint, so a resumed run computes the same advantages as one that never stopped."""

    def __init__(self, decay: float = 0.95):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay {decay} outside [0, 1]")
        self.decay = decay
        self.means: dict[str, float] = {}

    def advantages(self, rewards: Sequence[float], keys: Sequence[Hashable]) -> list[float]:
        """reward - the key's running mean (the batch's own mean the first time a key is seen), then the mean
        moves toward this batch's."""
        groups: dict[str, list[int]] = defaultdict(list)
        for i, k in enumerate(keys):
            groups[_name(k)].append(i)
        out = [0.0] * len(rewards)
        for name, idx in groups.items():
            batch = sum(rewards[i] for i in idx) / len(idx)
            base = self.means.get(name, batch)
            for i in idx:
                out[i] = rewards[i] - base
            self.means[name] = self.decay * base + (1.0 - self.decay) * batch
        return out

    def state_dict(self) -> dict:
        return {"decay": self.decay, "means": dict(self.means)}

    def load_state_dict(self, state: dict) -> None:
        """The saved means; the decay stays this object's (the config's), so a resume may change it."""
        self.means = {str(k): float(v) for k, v in state["means"].items()}


def _name(key: Hashable) -> str:
    return "/".join(map(str, key)) if isinstance(key, tuple) else str(key)


def prompt_running(rewards, prompt_ids, task_roles, baseline: RunningBaseline | None = None) -> list[float]:
    """Solver samples: GRPO within each prompt. Proposer samples (role "propose"): reward minus the running mean
    of their (task, role); a fresh RunningBaseline when none is given (then: reward minus the batch mean)."""
    baseline = baseline if baseline is not None else RunningBaseline()
    out = [0.0] * len(rewards)
    solve = [i for i, (_, role) in enumerate(task_roles) if role != "propose"]
    prop = [i for i, (_, role) in enumerate(task_roles) if role == "propose"]
    for i, a in zip(solve, _whiten([rewards[i] for i in solve], [prompt_ids[i] for i in solve])):
        out[i] = a
    for i, a in zip(prop, baseline.advantages([rewards[i] for i in prop], [task_roles[i] for i in prop])):
        out[i] = a
    return out


ESTIMATORS = {"grpo": grpo, "trr++": trr_plus_plus, "batch_mean": batch_mean, "prompt+running": prompt_running}


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
