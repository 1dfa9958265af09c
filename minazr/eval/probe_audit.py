"""How often do the checks for trivial tasks reject real, human-written tasks? Runs every CRUXEval item (a program
and its input, written by people to need reasoning) through the validation self-play gives a deduction and an
abduction proposal (selfplay.step.validate: the real sandbox, the probe timeout and the validation budget, the
follow-up checks), and counts the rejections by reason. A rejection here is a task self-play would wrongly call
trivial. No references are shown, so no copy check runs; outputs are not re-confirmed under new hash seeds.

    python -m minazr.eval.probe_audit [--limit N] [--out FILE]
"""

import argparse
import json
import sys
from collections import Counter

from tqdm import tqdm

from minazr.contracts.policy import ScoredSample
from minazr.eval.benchmarks import get
from minazr.sandbox.executor import Executor
from minazr.selfplay.step import Limits, _Proposal, validate
from minazr.selfplay.tasks import make_task


def audit(limit: int | None = None, chunk: int = 50, limits: Limits = Limits(), timeout_s: float = 5.0) -> dict:
    items = get("cruxeval-o").load(limit=limit)
    reasons: dict[str, Counter] = {name: Counter() for name in ("deduction", "abduction")}
    examples: dict[str, list[str]] = {}
    with Executor() as executor, tqdm(total=len(items), desc="probe audit", unit="item") as bar:
        for start in range(0, len(items), chunk):
            batch = items[start:start + chunk]
            for it, verdict in zip(batch, verdicts(batch, executor, limits, timeout_s)):
                for name, reason in verdict.items():
                    reasons[name][reason] += 1
                    if reason != "valid":
                        examples.setdefault(f"{name}: {reason}", []).append(it.id)
            bar.update(len(batch))
    return {"items": len(items), "deduction": dict(reasons["deduction"].most_common()),
            "abduction": dict(reasons["abduction"].most_common()),
            "limits": {"probe_timeout_s": limits.probe_timeout_s, "budget_s": limits.budget_s},
            "examples": {k: v[:10] for k, v in examples.items()}}


def verdicts(items, executor, limits: Limits = Limits(), timeout_s: float = 5.0) -> list[dict[str, str]]:
    """{"deduction": reason, "abduction": reason} for each CRUXEval item ("valid" or the rejection reason), from
    one batch per task type. Items are validated as separate proposals (an equal program earlier in the batch is
    not a copy here: that is the copy check's business, not a false rejection)."""
    out: list[dict[str, str]] = [{} for _ in items]
    for name in ("deduction", "abduction"):
        task = make_task(name)
        proposals = [_Proposal(task, {}, _blank(name), {"program": it.entry.data["program"],
                                                        "inputs": it.entry.data["inputs"]}) for it in items]
        validate(proposals, executor, timeout_s, step=0, confirm_runs=0, limits=limits, dedup=False)
        for verdict, p in zip(out, proposals):
            verdict[name] = "valid" if p.entry is not None else p.reason
    return out


def _blank(task: str) -> ScoredSample:
    return ScoredSample(task=task, role="propose", prompt_id=0, prompt="", completion="", prompt_token_ids=[],
                        completion_token_ids=[], logprobs=[], version=0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    report = json.dumps(audit(args.limit), indent=2)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(report + "\n")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
