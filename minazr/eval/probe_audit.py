"""How often do the checks for trivial tasks reject real, human-written tasks? Runs every CRUXEval item (a program
and its input, written by people to need reasoning) through a deduction and an abduction proposal's validation
in the real sandbox, and counts the rejections by reason. A false positive here is a task self-play would wrongly
call trivial.

    python -m minazr.eval.probe_audit [--limit N] [--out FILE]
"""

import argparse
import json
import sys
from collections import Counter

from tqdm import tqdm

from minazr.eval.benchmarks import get
from minazr.sandbox.executor import Executor
from minazr.selfplay.tasks import Invalid, make_task


def audit(limit: int | None = None, chunk: int = 50) -> dict:
    items = get("cruxeval-o").load(limit=limit)
    ded, abd = make_task("deduction"), make_task("abduction")
    reasons: dict[str, Counter] = {"deduction": Counter(), "abduction": Counter()}
    examples: dict[str, list[str]] = {}
    with Executor() as executor, tqdm(total=len(items), desc="probe audit", unit="item") as bar:
        for start in range(0, len(items), chunk):
            batch = items[start:start + chunk]
            proposals = [{"program": it.entry.data["program"], "inputs": it.entry.data["inputs"]} for it in batch]
            jobs = [ded.validation_jobs(p) for p in proposals]
            flat = executor.map([j for js in jobs for j in js], 5.0)
            at, entries = 0, []
            for it, p, js in zip(batch, proposals, jobs):
                res, at = flat[at:at + len(js)], at + len(js)
                try:
                    entries.append((it, ded.make_entry(p, res, step=0)))
                    reasons["deduction"]["valid"] += 1
                except Invalid as e:
                    entries.append((it, None))
                    reasons["deduction"][str(e)] += 1
                    examples.setdefault(str(e), []).append(it.id)
            follow = [(it, e, abd.followup_jobs(e)) for it, e in entries if e is not None]
            flat = executor.map([j for *_, js in follow for j in js], 5.0) if follow else []
            at = 0
            for it, e, js in follow:
                res, at = flat[at:at + len(js)], at + len(js)
                try:
                    abd.check_followup(e, res)
                    reasons["abduction"]["valid"] += 1
                except Invalid as err:
                    reasons["abduction"][str(err)] += 1
                    examples.setdefault(str(err), []).append(it.id)
            bar.update(len(batch))
    return {"items": len(items), "deduction": dict(reasons["deduction"].most_common()),
            "abduction_after_deduction": dict(reasons["abduction"].most_common()),
            "examples": {k: v[:10] for k, v in examples.items()}}


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
