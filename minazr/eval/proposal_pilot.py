"""A generation-only pilot of proposer prompts: how often does the model write a valid new task, a copy, or
nothing usable, under each way of showing references? No training: one round of proposals per arm, validated by
the real step (selfplay.step.validate: the sandbox, the copy checks, the rewards' classes).

    python -m minazr.eval.proposal_pilot --config configs/cpu_qwen2.5-coder-0.5b.yaml \
        --arms program:3,calls:6,calls:0 --prompts 16 --out runs/pilot_refs

An arm is STYLE:K (selfplay.reference_style, selfplay.k_references). References are the first --pool items of
CRUXEval as deduction/abduction entries (human-written programs, a stand-in for a seeded buffer: the pilot only
reads the proposals, nothing is trained on them), or with --refs-from a run's samples, the model's own tasks that
run's last quarter showed (experiment 2: docs/experiments/qwen2.5-coder-0.5b-v2/samples.jsonl.gz). Every arm
uses the same seed, so arms differ only in the prompt.
Writes OUT/pilot.json (per arm and task: counts by class and the rejection reasons) and OUT/samples.jsonl.
"""

import argparse
import gzip
import json
import re
import random
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

from minazr.contracts.policy import Sampling
from minazr.selfplay.buffer import Buffers
from minazr.selfplay.tasks import Entry, tasks_from_config

CLASSES = ("valid", "copy", "failed", "unreadable")


def classify(p) -> str:
    """The proposer reward's class of a validated proposal (minazr/selfplay/rewards.py's ladder)."""
    if p.entry is not None:
        return "valid"
    if p.duplicate:
        return "copy"
    return "failed" if p.fields is not None else "unreadable"


def shown_references(prompt: str) -> list[tuple[str, str, str]]:
    """(program, input, output) of each reference a proposer prompt showed as code (prompts.code_reference)."""
    part = prompt.split("### Functions that already exist", 1)[-1] if "### Functions" in prompt else ""
    out = []
    for block in re.findall(r"```python\n(.*?)\n```", part, re.S):
        program, sep, call = block.rpartition("\n\nf(")
        inputs, sep2, output = call.partition(")  # returns ")
        if sep and sep2 and program.startswith("def f"):
            out.append((program, inputs, output))
    return out


def run_references(samples: Path) -> dict[str, list[dict]]:
    """The references a run's proposer prompts showed in its last quarter (samples.jsonl or .gz), per task: the
    buffer the model was copying from, read back from the prompts (program, input and output as shown)."""
    opener = gzip.open if samples.suffix == ".gz" else open
    with opener(samples, "rt") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    last = max(r["step"] for r in rows)
    refs: dict[str, dict[str, dict]] = {}
    for r in rows:
        if r["role"] == "propose" and r["step"] >= 3 * (last + 1) // 4:
            for program, inputs, output in shown_references(r["prompt"]):
                refs.setdefault(r["task"], {})[program] = {"program": program, "inputs": inputs, "output": output}
    return {task: list(found.values()) for task, found in refs.items()}


def reference_buffers(tasks: list[str], pool: int, data_dir: str | None, samples: Path | None = None) -> Buffers:
    """Buffers of references: a run's own (`samples`), or the first `pool` items of CRUXEval."""
    from minazr.eval.benchmarks import get

    buffers = Buffers.empty(tasks, cap=4096)
    if samples is not None:
        for name, refs in run_references(samples).items():
            for i, data in enumerate(refs):
                if name in buffers:
                    buffers[name].add(Entry(name, data, f"ref-{i}", step=0))
        return buffers
    items = get("cruxeval-o").load(data_dir, limit=pool)
    for name in tasks:
        if name in ("deduction", "abduction"):
            for it in items:
                buffers[name].add(Entry(name, dict(it.entry.data), f"ref-{it.id}", step=0))
    return buffers


def run_arm(policy, cfg, arm: str, names: list[str], buffers: Buffers, executor, render, seed: int,
            prompts: int) -> tuple[dict, list[dict]]:
    """One round of `prompts` proposals per task under one arm (STYLE:K), validated by the step's own validate;
    the counts per class and task, and one row per proposal."""
    from minazr.selfplay.step import _Ids, Limits, propose, seed_buffers, validate

    style, k = arm.split(":")
    sp = replace(cfg.selfplay, reference_style=style, k_references=int(k), tasks=names)
    tasks = tasks_from_config(sp)
    seed_buffers(buffers, {n: t for n, t in tasks.items() if not len(buffers[n])}, executor)
    sampling = Sampling(sp.temperature, sp.top_p, sp.max_tokens, seed=seed)
    proposals = propose(policy, buffers, tasks, prompts, 1, render, random.Random(seed), sampling, _Ids())
    validate(proposals, executor, cfg.executor.timeout_s, step=0, confirm_runs=cfg.executor.confirm_runs,
             buffers=buffers, tasks=tasks, limits=Limits(cfg.executor.probe_timeout_s,
                                                         cfg.executor.validation_budget_s))
    counts, reasons, rows = {n: Counter() for n in names}, {n: Counter() for n in names}, []
    for p in proposals:
        kind = classify(p)
        counts[p.task.name][kind] += 1
        if kind != "valid":
            reasons[p.task.name][(p.reason or "")[:60]] += 1
        rows.append({"arm": arm, "task": p.task.name, "class": kind, "reason": p.reason,
                     "completion": p.sample.completion, "tokens": len(p.sample.completion_token_ids)})
    for p in proposals:  # new tasks leave the buffer again: every arm sees the same references
        if p.entry is not None:
            buffers[p.task.name].remove(p.entry.key)
    summary = {n: {"proposals": sum(counts[n].values()), **{c: counts[n][c] for c in CLASSES},
                   "reasons": dict(reasons[n].most_common(8))} for n in names}
    return summary, rows


def main(argv=None) -> int:
    """Run every arm on one rollout pool and one executor; print a line per arm, write OUT/pilot.json."""
    from transformers import AutoTokenizer

    from minazr.driver.config import load_config
    from minazr.driver.models import resolve_model
    from minazr.driver.ray_session import connect_ray
    from minazr.sandbox.executor import from_config as executor_from_config
    from minazr.selfplay.prompts import Renderer
    from rollout.worker import start_pool

    ap = argparse.ArgumentParser(prog="python -m minazr.eval.proposal_pilot", description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--arms", default="program:3,calls:6,calls:0")
    ap.add_argument("--tasks", default="deduction,abduction")
    ap.add_argument("--prompts", type=int, default=16, help="proposer prompts per task and arm")
    ap.add_argument("--pool", type=int, default=64, help="CRUXEval items in the reference buffer")
    ap.add_argument("--refs-from", type=Path, default=None,
                    help="a run's samples.jsonl(.gz): show the references its last quarter's prompts showed instead")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    names = args.tasks.split(",")
    path = resolve_model(cfg.model.name)
    render = Renderer.from_config(cfg.selfplay, AutoTokenizer.from_pretrained(path))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    connect_ray(cfg.train)
    results = {}
    pool = start_pool(path, cfg.rollout, cfg.run.seed)
    try:
        with executor_from_config(cfg.executor) as executor, (out / "samples.jsonl").open("w") as fh:
            for arm in args.arms.split(","):
                buffers = reference_buffers(names, args.pool, cfg.eval.data_dir or None, args.refs_from)
                results[arm], rows = run_arm(pool, cfg, arm, names, buffers, executor, render, args.seed,
                                             args.prompts)
                fh.writelines(json.dumps(r) + "\n" for r in rows)
                print(f"{arm}: " + " | ".join(f"{n} " + " ".join(f"{c}={results[arm][n][c]}" for c in CLASSES)
                                              for n in names), flush=True)
    finally:
        pool.close()
    report = {"arms": results, "args": vars(args)}
    (out / "pilot.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
