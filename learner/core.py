"""LearnerCore: the trainable model, the policy-gradient update, and the weight server (a plain class; the Ray
actor in learner/actor.py is a thin wrapper).

Loss, per completion token t of sample s (PPO-style clipped importance sampling against the behaviour log-probs the
engine reported when it sampled the token):

    ratio_t = exp(logp_t - behaviour_logp_t)
    loss_t  = -min(ratio_t * A_s, clip(ratio_t, 1 - eps, 1 + eps) * A_s)  [+ kl_coef * KL_t to the initial model]
    loss    = sum_s sum_t token_weight_s * loss_t

token_weight comes from minazr.advantages.token_weights: 1 / (tokens in the step) for token-mean aggregation.
Master weights stay fp32 (a bf16 AdamW step at lr 1e-6 is mostly below bf16 resolution, DESIGN.md); forward and
backward run under bf16 autocast. After each update the new weights are published on the ZMQ weight server.
"""

import copy
import json
import os
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from minazr.wire import DTYPES, WeightServer


def release_freed_memory() -> None:
    """Give the heap's free pages back to the OS (glibc). Micro-batches of ever-different shapes leave the CPU
    learner's heap fragmented: measured with the 0.5B model, its resident memory crept from 12 to 15 GB over five
    steps, close to Ray's kill line on a 24 GiB machine. Costs well under a second per step; a no-op elsewhere."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class LearnerCore:
    def __init__(self, model_path: str, cfg, publish_dtype: str = "bfloat16", bucket_mb: float = 64.0,
                 seed: int = 0, optimizer_state: str | None = None, host: str = "127.0.0.1"):
        from transformers import AutoModelForCausalLM

        torch.manual_seed(seed)
        self.device = torch.device("cuda" if cfg.num_gpus > 0 and torch.cuda.is_available() else "cpu")
        if self.device.type == "cpu":
            torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
        self.cfg = cfg
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).to(self.device)
        if cfg.gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        self.model.train()
        self.ref = None
        if cfg.kl_coef > 0:
            self.ref = copy.deepcopy(self.model).eval().requires_grad_(False)
        frozen = [n for n, p in self.model.named_parameters() if any(s in n for s in cfg.freeze)]
        if cfg.freeze and not frozen:
            raise ValueError(f"learner.freeze {cfg.freeze} matches no parameter of {model_path}")
        for name, param in self.model.named_parameters():
            param.requires_grad_(name not in frozen)
        if frozen and cfg.gradient_checkpointing:
            self.model.enable_input_require_grads()  # checkpointed blocks need a grad-requiring input
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if optimizer_state:
            self.load_state(optimizer_state)
        self.version = 0
        self.publish_dtype = DTYPES[publish_dtype]
        self.bucket_mb = bucket_mb
        self.server = WeightServer(host, cfg.weight_port or None)
        # Updates, publishes and saves never overlap, and numbered updates apply in version order, even if the
        # actor around this class runs calls on several threads (Ray orders calls only for single-threaded actors)
        self._turn = threading.Condition(threading.RLock())

    # ------------------------------------------------------------ training

    def train_step(self, batch: list[dict], version: int | None = None, wait_s: float = 600.0) -> dict:
        """One optimizer step over `batch` (dicts with prompt_ids, completion_ids, logprobs, advantage,
        token_weight), then publish the new weights. Returns metrics.

        `version` numbers the update: it applies only once the learner is at `version - 1` (an update submitted
        out of order waits up to `wait_s` for its predecessors; one that is behind raises)."""
        with self._turn:
            if version is not None:
                if version <= self.version:
                    raise ValueError(f"update {version} arrived at a learner already at version {self.version}")
                if not self._turn.wait_for(lambda: self.version == version - 1, timeout=wait_s):
                    raise TimeoutError(f"update {version} waited {wait_s:.0f} s for update {version - 1}")
            metrics = self._train_step(batch, version)
            self._turn.notify_all()
            return metrics

    def _train_step(self, batch: list[dict], version: int | None) -> dict:
        t0 = time.perf_counter()
        stats = {"loss": 0.0, "pg_loss": 0.0, "kl": 0.0, "clip_frac": 0.0, "ratio": 0.0, "tokens": 0}
        # A sample whose advantage is 0 adds nothing to the policy gradient: without a KL term it is skipped, which
        # saves its forward and backward (whole TRR++ groups where every answer scored the same, e.g. all invalid).
        nonempty = [b for b in batch if b["completion_ids"]]
        temperatures = {float(b.get("temperature", 1.0)) for b in nonempty}
        if len(temperatures) > 1 or min(temperatures, default=1.0) <= 0:
            raise ValueError(f"a training batch needs one sampling temperature > 0, got {sorted(temperatures)}")
        temperature = temperatures.pop() if temperatures else 1.0
        items = [b for b in nonempty if b["advantage"] != 0 or self.ref is not None]
        for micro in self._micro_batches(items):
            self._accumulate(micro, stats, temperature)
            release_freed_memory()
        grad_norm = 0.0
        if items:
            params = [p for p in self.model.parameters() if p.grad is not None]
            if self.cfg.grad_clip > 0:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip))
            else:
                grad_norm = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])))
            self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.version = version if version is not None else self.version + 1
        train_s = time.perf_counter() - t0
        pub = self.publish()
        release_freed_memory()
        n = max(1, stats["tokens"])
        return {"learner/loss": stats["loss"], "learner/pg_loss": stats["pg_loss"], "learner/kl": stats["kl"] / n,
                "learner/clip_frac": stats["clip_frac"] / n, "learner/ratio_mean": stats["ratio"] / n,
                "learner/grad_norm": grad_norm, "learner/tokens": stats["tokens"], "learner/samples": len(items),
                "learner/skipped_zero_advantage": len(nonempty) - len(items),
                "learner/tokens_per_s": stats["tokens"] / max(train_s, 1e-9), "time/learner_update": train_s,
                "time/serialize": pub["serialize_s"], "version": self.version}

    def _micro_batches(self, items: list[dict]):
        """Group samples (longest first) so each micro-batch's padded size stays under micro_batch_tokens."""
        order = sorted(items, key=lambda b: -(len(b["prompt_ids"]) + len(b["completion_ids"])))
        micro, longest = [], 0
        for b in order:
            length = len(b["prompt_ids"]) + len(b["completion_ids"])
            if micro and max(longest, length) * (len(micro) + 1) > self.cfg.micro_batch_tokens:
                yield micro
                micro, longest = [], 0
            micro.append(b)
            longest = max(longest, length)
        if micro:
            yield micro

    def _accumulate(self, micro: list[dict], stats: dict, temperature: float = 1.0) -> None:
        ids, mask, targets, old, adv, weight = self._tensors(micro)
        on = weight > 0  # (B, T-1): completion tokens; only their logits are computed
        logp = self._logprobs(self.model, ids, mask, targets, on, temperature)  # (N,)
        old, adv, weight = old[on], adv[on], weight[on]
        ratio = torch.exp(logp - old)
        clipped = torch.clamp(ratio, 1 - self.cfg.clip_eps, 1 + self.cfg.clip_eps)
        pg = -torch.minimum(ratio * adv, clipped * adv)
        per_token = pg
        if self.ref is not None:
            with torch.no_grad():
                ref_logp = self._logprobs(self.ref, ids, mask, targets, on, temperature)
            delta = ref_logp - logp
            kl = torch.exp(delta) - delta - 1  # k3 estimator, >= 0
            per_token = pg + self.cfg.kl_coef * kl
            stats["kl"] += float(kl.detach().sum())
        loss = (per_token * weight).sum()
        loss.backward()
        stats["loss"] += float(loss.detach())
        stats["pg_loss"] += float((pg.detach() * weight).sum())
        stats["clip_frac"] += float(((ratio.detach() - clipped.detach()).abs() > 1e-6).sum())
        stats["ratio"] += float(ratio.detach().sum())
        stats["tokens"] += int(on.sum())

    def _logprobs(self, model, ids, mask, targets, on, temperature: float = 1.0) -> torch.Tensor:
        """log p of the selected target tokens. The decoder runs on every position, but the vocabulary projection
        (a large share of a small model's compute) only on the positions that predict completion tokens."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.autocast_bf16):
            hidden = model.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, H)
            logits = model.get_output_embeddings()(hidden[:, :-1][on])  # (N, V)
        # the engine samples from softmax(logits / T) and reports those log-probs: the ratio compares like with like
        return -F.cross_entropy(logits.float() / temperature, targets[on], reduction="none")

    def _tensors(self, micro: list[dict]):
        """Right-padded inputs and, aligned with positions 1..T-1, targets, behaviour log-probs, advantages and
        per-token weights (0 on prompt and padding tokens)."""
        T = max(len(b["prompt_ids"]) + len(b["completion_ids"]) for b in micro)
        B = len(micro)
        ids = torch.zeros(B, T, dtype=torch.long)
        mask = torch.zeros(B, T, dtype=torch.long)
        old = torch.zeros(B, T - 1)
        adv = torch.zeros(B, T - 1)
        weight = torch.zeros(B, T - 1)
        for i, b in enumerate(micro):
            seq = list(b["prompt_ids"]) + list(b["completion_ids"])
            p, c = len(b["prompt_ids"]), len(b["completion_ids"])
            ids[i, :len(seq)] = torch.tensor(seq)
            mask[i, :len(seq)] = 1
            old[i, p - 1:p - 1 + c] = torch.tensor(b["logprobs"], dtype=torch.float32)
            adv[i, p - 1:p - 1 + c] = b["advantage"]
            weight[i, p - 1:p - 1 + c] = b["token_weight"]
        dev = self.device
        return ids.to(dev), mask.to(dev), ids[:, 1:].to(dev), old.to(dev), adv.to(dev), weight.to(dev)

    # ------------------------------------------------------------ weights

    def publish(self) -> dict:
        # parameters only: buffers such as rotary inv_freq are computed by the engine itself
        with self._turn:
            stats = self.server.publish(self.model.named_parameters(), self.version, self.publish_dtype,
                                        self.bucket_mb)
            return {**stats, "version": self.version, "address": self.server.address}

    def address(self) -> str:
        return self.server.address

    @torch.no_grad()
    def score(self, token_ids: list[int], start: int) -> list[float]:
        """Log-probs the current weights give token_ids[start:] (same autocast as training)."""
        ids = torch.tensor([token_ids], device=self.device)
        on = torch.zeros(1, len(token_ids) - 1, dtype=torch.bool, device=self.device)
        on[0, start - 1:] = True
        lp = self._logprobs(self.model, ids, torch.ones_like(ids), ids[:, 1:], on)
        return [float(x) for x in lp]

    # ------------------------------------------------------------ checkpoints

    def save(self, directory: str) -> None:
        """HF weights (fp32, loadable by transformers and vLLM) + optimizer and RNG state, in `directory`."""
        with self._turn:
            self._save(Path(directory))

    def _save(self, out: Path) -> None:
        self.model.save_pretrained(out / "model", safe_serialization=True)
        torch.save({"optimizer": self.opt.state_dict(), "torch_rng": torch.get_rng_state(), "version": self.version},
                   out / "learner_state.pt")
        (out / "learner.json").write_text(json.dumps({"version": self.version}))

    def load_state(self, path: str) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        try:
            self.opt.load_state_dict(state["optimizer"])
        except ValueError as e:  # e.g. a parameter group of another size: learner.freeze changed since the save
            raise ValueError(f"the checkpoint's optimizer state does not fit this learner ({e}); was learner.freeze "
                             "changed since the checkpoint was written?") from None
        torch.set_rng_state(state["torch_rng"])

    def set_version(self, version: int) -> None:
        with self._turn:
            self.version = version
            self._turn.notify_all()

    def close(self) -> None:
        self.server.close()

