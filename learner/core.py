"""LearnerCore: the trainable model, the policy-gradient update, and the weight server (a plain class; the Ray
actor in learner/actor.py is a thin wrapper).

Loss, per completion token t of sample s (PPO-style clipped importance sampling against the behaviour log-probs the
engine reported when it sampled the token):

    ratio_t = exp(logp_t - behaviour_logp_t)
    loss_t  = -min(ratio_t * A_s, clip(ratio_t, 1 - eps, 1 + eps) * A_s)  [+ kl_coef * KL_t to the initial model]
    loss    = sum_s sum_t token_weight_s * loss_t

token_weight comes from minazr.selfplay.advantages.token_weights: 1 / (tokens in the step) for token-mean aggregation.
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

from learner.packing import Row, micro_batches, pack_rows, row_tensors
from minazr.contracts.dtypes import engine_dtype, learner_autocast
from minazr.contracts.wire import DTYPES, WeightServer


def target_logprobs(head, hidden: torch.Tensor, target: torch.Tensor, temperature: float,
                    chunk: int) -> torch.Tensor:
    """log softmax(head(hidden) / temperature)[target] per row, `chunk` rows of logits at a time (each chunk is
    recomputed in backward instead of kept); chunk 0: all at once."""
    def part(h, y):
        # the engine samples from softmax(logits / T) and reports those log-probs: the ratio compares like with like
        return -F.cross_entropy(head(h).float() / temperature, y, reduction="none")

    if chunk <= 0 or len(target) <= chunk:
        return part(hidden, target)
    from torch.utils.checkpoint import checkpoint

    return torch.cat([checkpoint(part, hidden[i:i + chunk], target[i:i + chunk], use_reentrant=False)
                      for i in range(0, len(target), chunk)])


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
        # bf16 autocast only where the hardware computes bf16 natively (auto); emulated, it is ~15x slower
        self.autocast = learner_autocast(cfg.autocast_bf16, self.device.type == "cuda")
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
        self.publish_dtype = DTYPES[engine_dtype(publish_dtype, self.device.type == "cuda")]
        self.bucket_mb = bucket_mb
        self.server = WeightServer(host, cfg.weight_port or None, "/dev/shm" if cfg.weight_shm else None)
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
        stats = {"loss": 0.0, "pg_loss": 0.0, "kl": 0.0, "clip_frac": 0.0, "ratio": 0.0, "tokens": 0,
                 "processed": 0, "padding": 0}
        # A sample whose advantage is 0 adds nothing to the policy gradient: without a KL term it is skipped, which
        # saves its forward and backward (whole TRR++ groups where every answer scored the same, e.g. all invalid).
        nonempty = [b for b in batch if b["completion_ids"]]
        temperatures = {float(b.get("temperature", 1.0)) for b in nonempty}
        if len(temperatures) > 1 or min(temperatures, default=1.0) <= 0:
            raise ValueError(f"a training batch needs one sampling temperature > 0, got {sorted(temperatures)}")
        temperature = temperatures.pop() if temperatures else 1.0
        items = [b for b in nonempty if b["advantage"] != 0 or self.ref is not None]
        rows = pack_rows(items, self.cfg.micro_batch_tokens, self.cfg.share_prompts)
        for micro in micro_batches(rows, self.cfg.micro_batch_tokens):
            self._accumulate(row_tensors(micro, self.device), stats, temperature)
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
        unpacked = sum(len(b["prompt_ids"]) + len(b["completion_ids"]) for b in items)
        return {"learner/loss": stats["loss"], "learner/pg_loss": stats["pg_loss"], "learner/kl": stats["kl"] / n,
                "learner/clip_frac": stats["clip_frac"] / n, "learner/ratio_mean": stats["ratio"] / n,
                "learner/grad_norm": grad_norm, "learner/tokens": stats["tokens"], "learner/samples": len(items),
                "learner/skipped_zero_advantage": len(nonempty) - len(items),
                "learner/nonzero_advantage": sum(b["advantage"] != 0 for b in nonempty),
                # every position the decoder ran on (prompts once per row, completions), and padding on top
                "learner/processed_tokens": stats["processed"], "learner/padding_tokens": stats["padding"],
                "learner/shared_prompt_tokens": unpacked - stats["processed"],
                "learner/processed_tokens_per_s": stats["processed"] / max(train_s, 1e-9),
                "learner/tokens_per_s": stats["tokens"] / max(train_s, 1e-9), "time/learner_update": train_s,
                "time/serialize": pub["serialize_s"], "version": self.version}

    def _accumulate(self, t: dict, stats: dict, temperature: float = 1.0) -> None:
        logp = self._logprobs(self.model, t, temperature)  # (N,) one per completion token
        old, adv, weight = t["old"], t["adv"], t["weight"]
        ratio = torch.exp(logp - old)
        clipped = torch.clamp(ratio, 1 - self.cfg.clip_eps, 1 + self.cfg.clip_eps)
        pg = -torch.minimum(ratio * adv, clipped * adv)
        per_token = pg
        if self.ref is not None:
            with torch.no_grad():
                ref_logp = self._logprobs(self.ref, t, temperature)
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
        stats["tokens"] += len(t["target"])
        stats["processed"] += t["tokens"]
        stats["padding"] += t["padded"] - t["tokens"]

    def _logprobs(self, model, t: dict, temperature: float = 1.0) -> torch.Tensor:
        """log p of each completion token (row_tensors' `source` -> `target`). The decoder runs on every position;
        the vocabulary projection (a large share of a small model's compute) only on the positions that predict
        completion tokens, `logits_chunk_tokens` at a time (recomputed in backward, so the fp32 logits of a long
        batch of a 150k-vocabulary model never sit in memory at once)."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            hidden = model.get_decoder()(input_ids=t["ids"], attention_mask=t["mask"],
                                         position_ids=t["positions"]).last_hidden_state  # (B, T, H)
            hidden = hidden.reshape(-1, hidden.shape[-1])[t["source"]]  # (N, H)
            return target_logprobs(model.get_output_embeddings(), hidden, t["target"], temperature,
                                   self.cfg.logits_chunk_tokens)

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
        completion = list(token_ids[start:])
        item = {"completion_ids": completion, "logprobs": [0.0] * len(completion), "advantage": 0.0,
                "token_weight": 0.0}
        lp = self._logprobs(self.model, row_tensors([Row(list(token_ids[:start]), [item])], self.device))
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

