"""The peer baseline of `minazr bench`: TRL's GRPOTrainer on the same model, prompts and batch shape.

    python -m minazr.bench.peer MODE < spec.json   # MODE: vllm-colocate or transformers
    # spec: {"model", "prompts", "num_generations", "max_tokens", "steps"}

Runs in its own process (TRL and its imports stay out of the bench). One JSON line on stdout: completions/s over
`steps` GRPO steps after a warm-up step, in the given generation mode. The bench tries TRL's vLLM colocate mode
first (the stronger peer) and, when it fails, transformers generation, and says which ran and why (on this CPU
machine TRL's colocate engine starts but its weight sync, vLLM's load_weights, fails on the CPU backend). The reward is a cheap stand-in (completion length
modulo 7): the peer is timed on generation and update, not on judging.
`pip install -e '.[peer]'` installs TRL; without it the bench skips this section with one line.
"""

import json
import os
import sys
import tempfile
import time


def available() -> str | None:
    """None when TRL imports; else the reason it does not."""
    try:
        import trl  # noqa: F401
    except Exception as e:  # ImportError, or a version clash inside TRL's own imports
        return f"{type(e).__name__}: {str(e).splitlines()[0][:160]}" if str(e) else type(e).__name__
    return None


def _trainer(spec: dict, use_vllm: bool):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    n = spec["num_generations"]
    batch = n * len(spec["prompts"])
    args = GRPOConfig(output_dir=tempfile.mkdtemp(prefix="minazr-trl-"), per_device_train_batch_size=batch,
                      gradient_accumulation_steps=1, num_generations=n, max_completion_length=spec["max_tokens"],
                      temperature=1.0, top_p=1.0, learning_rate=1e-5, max_steps=spec["steps"] + 1,
                      logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, bf16=False,
                      use_vllm=use_vllm, vllm_mode="colocate", seed=0, dataloader_num_workers=0)
    data = Dataset.from_dict({"prompt": list(spec["prompts"]) * (spec["steps"] + 1)})

    def reward(completions, **_):
        return [float(len(c) % 7) for c in completions]

    return GRPOTrainer(model=spec["model"], reward_funcs=reward, args=args, train_dataset=data)


def main(mode: str) -> None:
    spec = json.loads(sys.stdin.read())
    import torch
    from transformers import TrainerCallback

    torch.set_num_threads(os.cpu_count() or 1)
    trainer = _trainer(spec, use_vllm=mode == "vllm-colocate")

    marks = []

    class Clock(TrainerCallback):
        def on_step_end(self, *_, **__):
            marks.append(time.perf_counter())

    trainer.add_callback(Clock())
    t0 = time.perf_counter()
    trainer.train()
    completions = spec["num_generations"] * len(spec["prompts"])
    steady = marks[-1] - marks[0] if len(marks) > 1 else marks[-1] - t0
    steps = max(1, len(marks) - 1)
    print(json.dumps({"mode": mode, "steps": steps,
                      "completions_per_step": completions, "step_s": steady / steps,
                      "completions_per_s": completions * steps / steady,
                      "first_step_s": marks[0] - t0}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "transformers")
