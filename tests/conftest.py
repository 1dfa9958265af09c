"""Shared test helpers: a scripted Policy (no model) and a small executor."""

import os

import pytest

from minazr.sandbox.executor import Executor
from minazr.contracts.policy import Completion, Generation

# Overrides for integration runs with real engines: small and fast (eager engines, short completions, no seeding).
TINY = ["rollout.enforce_eager=true", "rollout.kv_cache_gb=0.5", "rollout.max_model_len=2048",
        "selfplay.propose_per_task=1", "selfplay.solve_per_task=1", "selfplay.n_solve=2", "selfplay.n_mc=2",
        "selfplay.max_tokens=24", "selfplay.k_references=1", "buffer.seed_size=1", "buffer.seed_max_rounds=0",
        "train.tensorboard=false"]


class ScriptedPolicy:
    """A Policy whose completions come from `script(prompt, n) -> list[str]`.

    Token ids are the UTF-8 bytes of the text and every behaviour log-prob is -1.0, so lengths are predictable.
    Records every call, so tests can check that one phase is one call.
    """

    def __init__(self, script, version: int = 0):
        self.script = script
        self.version = version
        self.calls: list[list] = []

    def generate(self, requests, sampling):
        self.calls.append(list(requests))
        out = []
        for r in requests:
            texts = self.script(r.prompt, r.n)
            assert len(texts) == r.n, (r.prompt[:80], len(texts), r.n)
            comps = [Completion(t, list(t.encode("utf-8", "surrogatepass")),
                                [-1.0] * len(t.encode("utf-8", "surrogatepass"))) for t in texts]
            out.append(Generation(list(r.prompt.encode()[:16]), comps, self.version))
        return out


def tiny_llama(directory, vocab: int, hidden: int, positions: int) -> str:
    """A tiny random Llama (2 layers, 4 heads, seed 0) saved in `directory`; its path."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=positions,
                         tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(directory)
    return str(directory)


@pytest.fixture(scope="session")
def executor():
    with Executor(workers=2) as ex:
        yield ex


WEAK_SANDBOX_OK = "MINAZR_TESTS_ALLOW_WEAK_SANDBOX"


def require_isolation(available: bool, what: str) -> None:
    """An isolation layer the README promises must be tested, not skipped: a machine without it fails the test
    unless MINAZR_TESTS_ALLOW_WEAK_SANDBOX=1 says that is expected there (then it is skipped, and says so)."""
    if available:
        return
    message = f"{what} is not available on this machine"
    if os.environ.get(WEAK_SANDBOX_OK) == "1":
        pytest.skip(f"{message} ({WEAK_SANDBOX_OK}=1)")
    pytest.fail(f"{message}: the sandbox runs without that layer here; set {WEAK_SANDBOX_OK}=1 to accept it")
