"""The narrow interface the self-play step generates through, and the samples it returns.

A Policy takes every prompt of one phase in one call (so a real engine batches them) and returns, per request,
the prompt's token ids and n completions with their token ids and behaviour log-probs, stamped with the version
of the weights that produced them. The rollout workers implement it with vLLM; tests implement it with scripts.
"""

import re
from dataclasses import dataclass, field
from typing import Protocol


class PoolError(RuntimeError):
    """The rollout workers cannot serve (placement impossible, a hang, too many deaths); one line for the user."""


def root_cause(error: Exception) -> str:
    """The innermost 'SomeError: message' line of a remote error (Ray wraps the remote traceback in its text)."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    causes = [ln for ln in lines if re.match(r"^[A-Za-z_.]*(Error|Exception)\b:", ln)]
    return (causes[-1] if causes else lines[0] if lines else type(error).__name__)[:300]


PROMPT_TOO_LONG = "prompt_too_long"  # finish reason of a request whose prompt alone fills the context (refused)


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 512
    ignore_eos: bool = False  # benchmarks only: always generate max_tokens
    stop: tuple[str, ...] = ()  # evaluation prompts: generation ends at any of these strings (left out of the text)
    seed: int | None = None  # request i of a generate call samples with seed + i: reproducible, whatever the
    #                          worker or batch it lands in (resumed runs regenerate what the original run did)


@dataclass(frozen=True)
class GenRequest:
    prompt: str  # fully rendered text (template applied)
    n: int  # completions wanted
    seed: int | None = None  # this request's sampling seed (overrides Sampling.seed + index)


@dataclass
class Completion:
    text: str
    token_ids: list[int]
    logprobs: list[float]  # behaviour log-prob of each sampled token, same length as token_ids
    finish_reason: str = "stop"  # "stop", "length", or PROMPT_TOO_LONG


@dataclass
class Generation:
    prompt_token_ids: list[int]
    completions: list[Completion]
    version: int  # policy version (weights) that produced these completions
    worker: int = -1  # the rollout worker slot that generated them (-1: not a pool worker)


class Policy(Protocol):
    def generate(self, requests: list[GenRequest], sampling: Sampling) -> list[Generation]:
        """One Generation per request, in order, each with request.n completions."""
        ...


@dataclass
class ScoredSample:
    """One trainable sample: what the learner needs, plus what the metrics and logs need."""

    task: str  # deduction / abduction / induction / math
    role: str  # "propose" or "solve"
    prompt_id: int  # samples of the same prompt share it (GRPO groups)
    prompt: str
    completion: str
    prompt_token_ids: list[int]
    completion_token_ids: list[int]
    logprobs: list[float]  # behaviour log-probs from the engine
    version: int  # policy version that generated it
    temperature: float = 1.0  # sampling temperature: the learner applies it when it recomputes log-probs
    finish_reason: str = "stop"  # "length": cut off at max_tokens
    reward: float = 0.0
    outcome: str = ""  # valid / invalid: reason / correct / wrong / unparseable: reason
    advantage: float = 0.0
    token_weight: float = 0.0  # loss weight of each of its tokens (see advantages.token_weights)
    extra: dict = field(default_factory=dict)
    worker: int = -1  # the rollout worker slot that generated it (-1: unknown)
