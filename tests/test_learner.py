"""The learner's promises, on a tiny random Llama (fp32, no autocast, so values can be compared exactly):

- the loss of a step equals the clipped policy-gradient objective plus the k3 KL term, computed here by hand from an
  independent forward pass, with per-sample token weights;
- one step raises the log-probs of a positive-advantage completion and lowers those of a negative one;
- save + load restores parameters, optimizer state and RNG state exactly, so a resumed learner takes the same next
  step as one that never stopped.
"""

import math

import pytest
import torch
from conftest import tiny_llama

from learner.core import LearnerCore
from minazr.driver.config import LearnerConfig

VOCAB = 48


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model", VOCAB, hidden=32, positions=64)


def learner(path, optimizer_state=None, **overrides) -> LearnerCore:
    cfg = LearnerConfig(**{"autocast_bf16": False, "grad_clip": 0.0, "lr": 1e-3, "threads": 1, **overrides})
    return LearnerCore(path, cfg, publish_dtype="float32", optimizer_state=optimizer_state)


def logprobs(model, prompt, completion, temperature=1.0) -> torch.Tensor:
    """log p(completion | prompt) per token, from a plain full forward (not the learner's code path)."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()  # (T, V)
    logp = torch.log_softmax(logits[:-1] / temperature, dim=-1)  # position t predicts token t + 1
    targets = ids[0, 1:]
    return logp[torch.arange(len(targets)), targets][len(prompt) - 1:]  # (len(completion),)


SAMPLES = [  # prompt, completion, advantage, token weight, behaviour log-prob offsets (ratio = exp(-offset))
    ([1, 2, 3], [4, 5, 6, 7], 1.5, 0.1, [0.0, 0.5, -0.5, 0.1]),  # ratios 1, e^-.5 (clipped low), e^.5 (high)
    ([8, 9], [10, 11, 12], -2.0, 0.25, [0.4, -0.4, 0.0]),  # negative advantage: the other side clips
]


def batch(core, samples):
    out = []
    for prompt, completion, adv, weight, offsets in samples:
        lp = logprobs(core.model, prompt, completion)
        out.append({"prompt_ids": prompt, "completion_ids": completion, "advantage": adv, "token_weight": weight,
                    "logprobs": [float(x) + o for x, o in zip(lp, offsets)]})
    return out


def expected_loss(core, samples, b, eps, kl_coef, ref=None):
    """sum_s w_s sum_t [ -min(r A, clip(r, 1-eps, 1+eps) A) + kl_coef * (exp(d) - d - 1) ], d = ref - logp."""
    total, clipped_tokens = 0.0, 0
    for (prompt, completion, adv, weight, _), item in zip(samples, b):
        lp = logprobs(core.model, prompt, completion)
        ref_lp = logprobs(ref, prompt, completion) if ref is not None else lp
        for t in range(len(completion)):
            r = math.exp(float(lp[t]) - item["logprobs"][t])
            c = min(max(r, 1 - eps), 1 + eps)
            clipped_tokens += abs(r - c) > 1e-6
            d = float(ref_lp[t] - lp[t])
            total += weight * (-min(r * adv, c * adv) + kl_coef * (math.exp(d) - d - 1))
    return total, clipped_tokens


def test_the_loss_is_the_clipped_objective_with_kl_and_token_weights(tiny_model):
    core = learner(tiny_model, clip_eps=0.2, kl_coef=0.3)
    try:
        with torch.no_grad():  # move the reference away from the policy, so the KL term is not zero
            for p in core.ref.parameters():
                p.add_(0.05 * torch.randn_like(p))
        b = batch(core, SAMPLES)
        want, clipped = expected_loss(core, SAMPLES, b, eps=0.2, kl_coef=0.3, ref=core.ref)
        m = core.train_step(b)
        assert m["learner/loss"] == pytest.approx(want, rel=1e-4, abs=1e-6)
        assert m["learner/tokens"] == 7 and m["learner/clip_frac"] == pytest.approx(clipped / 7)
        assert clipped == 4 and m["learner/kl"] > 0  # both clip sides are exercised, the KL term is live
        pg_only, _ = expected_loss(core, SAMPLES, b, eps=0.2, kl_coef=0.0)  # the step changed the model: no
        assert pg_only != pytest.approx(want)  # accidental match between the two terms
    finally:
        core.close()


def test_the_loss_without_kl_weighs_each_sample_by_its_token_weight(tiny_model):
    core = learner(tiny_model, clip_eps=0.1)
    try:
        heavy = [(p, c, a, w * 10 if i == 0 else w, o) for i, (p, c, a, w, o) in enumerate(SAMPLES)]
        b = batch(core, heavy)
        want, _ = expected_loss(core, heavy, b, eps=0.1, kl_coef=0.0)
        assert core.train_step(b)["learner/loss"] == pytest.approx(want, rel=1e-4, abs=1e-6)
    finally:
        core.close()


def test_the_ratio_uses_the_sampling_temperature(tiny_model):
    """The engine reports log-probs of softmax(logits / T) (vLLM's processed_logprobs): behaviour log-probs taken at
    T = 0.5 give a ratio of exactly 1 on the first step, and a learner that ignored T would see another ratio."""
    core = learner(tiny_model, clip_eps=0.2)
    try:
        b = []
        for prompt, completion, adv, weight, _ in SAMPLES:
            lp = logprobs(core.model, prompt, completion, temperature=0.5)
            b.append({"prompt_ids": prompt, "completion_ids": completion, "advantage": adv, "token_weight": weight,
                      "logprobs": [float(x) for x in lp], "temperature": 0.5})
        m = core.train_step(b)
        assert m["learner/ratio_mean"] == pytest.approx(1.0, abs=1e-5) and m["learner/clip_frac"] == 0
        untempered = [float(x) for x in logprobs(core.model, *SAMPLES[0][:2])]
        assert max(abs(x - y) for x, y in zip(untempered, b[0]["logprobs"])) > 0.01  # T matters in this test
        with pytest.raises(ValueError, match="one sampling temperature"):
            core.train_step([b[0], {**b[1], "temperature": 1.0}])
    finally:
        core.close()


SHARED = [  # three answers to one prompt (packed behind one copy of it) and one to another prompt
    ([1, 2, 3, 4, 5], [6, 7, 8], 1.0, 0.1, [0.0, 0.3, -0.3]),
    ([1, 2, 3, 4, 5], [9, 10], -0.5, 0.1, [0.2, 0.0]),
    ([1, 2, 3, 4, 5], [11, 12, 13, 14], 2.0, 0.1, [-0.2, 0.1, 0.0, 0.4]),
    ([8, 9], [10, 11, 12], -2.0, 0.25, [0.4, -0.4, 0.0]),
]


@pytest.mark.parametrize("overrides", [{"share_prompts": True}, {"share_prompts": True, "logits_chunk_tokens": 2},
                                       {"share_prompts": False}])
def test_packed_rows_and_chunked_logits_give_the_same_loss_and_step(tiny_model, overrides):
    """Completions of one prompt packed behind one copy of it, the vocabulary projection in chunks of 2 tokens, or
    one padded row per sample: the loss is the hand-computed one, and the update equals the plain path's."""
    plain = learner(tiny_model, clip_eps=0.2, share_prompts=False, logits_chunk_tokens=0)
    core = learner(tiny_model, clip_eps=0.2, **overrides)
    try:
        b = batch(core, SHARED)
        want, _ = expected_loss(core, SHARED, b, eps=0.2, kl_coef=0.0)
        m = core.train_step(b)
        assert m["learner/loss"] == pytest.approx(want, rel=1e-4, abs=1e-6)
        plain.train_step(b)
        for (name, a), (_, p) in zip(core.model.named_parameters(), plain.model.named_parameters()):
            assert torch.allclose(a, p, atol=1e-6), name
        unpacked = sum(len(p) + len(c) for p, c, *_ in SHARED)
        shared = overrides["share_prompts"]
        assert m["learner/processed_tokens"] == unpacked - (10 if shared else 0)  # the prompt read once, not 3x
        assert m["learner/shared_prompt_tokens"] == (10 if shared else 0)
    finally:
        core.close()
        plain.close()


def test_one_step_raises_good_completions_and_lowers_bad_ones(tiny_model):
    core = learner(tiny_model, lr=1e-2)
    try:
        good, bad = ([1, 2, 3], [20, 21, 22, 23]), ([1, 2, 3], [30, 31, 32, 33])
        before = [logprobs(core.model, *s).sum() for s in (good, bad)]
        b = [{"prompt_ids": p, "completion_ids": c, "advantage": a, "token_weight": 1 / 8,
              "logprobs": [float(x) for x in logprobs(core.model, p, c)]} for (p, c), a in ((good, 1.0), (bad, -1.0))]
        core.train_step(b)
        after = [logprobs(core.model, *s).sum() for s in (good, bad)]
        assert after[0] > before[0] + 0.1 and after[1] < before[1] - 0.1, (before, after)
        # the learner's own scoring path (used to check pushed weights) agrees with the plain forward
        assert core.score([1, 2, 3, 20, 21, 22, 23], 3) == pytest.approx(
            [float(x) for x in logprobs(core.model, *good)], abs=1e-5)
    finally:
        core.close()


def test_a_saved_and_loaded_learner_continues_exactly(tiny_model, tmp_path):
    a = learner(tiny_model, lr=5e-3)
    try:
        a.train_step(batch(a, SAMPLES))
        a.train_step(batch(a, SAMPLES))
        a.save(str(tmp_path))
        # as `minazr train --resume` starts it: the checkpoint's weights and its optimizer state
        b = learner(str(tmp_path / "model"), optimizer_state=str(tmp_path / "learner_state.pt"), lr=5e-3)
        try:
            for (name, pa), (_, pb) in zip(a.model.named_parameters(), b.model.named_parameters()):
                assert torch.equal(pa, pb), name
            sa, sb = a.opt.state_dict(), b.opt.state_dict()
            assert sa["param_groups"] == sb["param_groups"] and sa["state"].keys() == sb["state"].keys()
            for k in sa["state"]:
                for field in ("step", "exp_avg", "exp_avg_sq"):
                    assert torch.equal(sa["state"][k][field], sb["state"][k][field]), (k, field)
            # the same next step from both: a resume that lost weights or moments would diverge here
            ma, mb = a.train_step(batch(a, SAMPLES)), b.train_step(batch(b, SAMPLES))
            assert ma["learner/loss"] == mb["learner/loss"]
            assert all(torch.equal(pa, pb) for pa, pb in zip(a.model.parameters(), b.model.parameters()))
        finally:
            b.close()
    finally:
        a.close()
