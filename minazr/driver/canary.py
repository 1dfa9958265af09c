"""The canary: a small fixed evaluation during `minazr train`, paired item by item with the one before training.

    metrics = canary_metrics(summary, rows, baseline_rows(run_dir))   # eval/<bench>, eval/net_vs_base/<bench>, ...
    nets = [net for _, net in history(run_dir, "gsm8k")]            # every canary so far, read back from RUN_DIR/eval
    should_stop(nets, stop_items=5)                                   # the last two each lost >= 5 items net

With eval.every > 0 the served weights answer the first eval.canary_items items of each eval.canary_benchmarks file
once before the first training step (RUN_DIR/eval/baseline/, logged as step -1: "after step -1", i.e. after no
update) and after every eval.every-th step (RUN_DIR/eval/step_NNNNNN/). The items are the same every time, so each
canary pairs with the baseline item by item: net = items it gets right that the baseline got wrong, minus the
reverse. On a slice of 50-100 items an accuracy moves by a few points by chance; the paired count says how many
items actually flipped, and which way.

The stop rule (eval.canary_stop_items > 0) ends the run when the GSM8K canary has lost at least that many items net
on two consecutive canaries: one unlucky canary does not end a run, two in a row is a trend. Everything here is
recomputed from the files in RUN_DIR/eval/, so a resumed run applies the rule exactly as an uninterrupted run would.
"""

import json
import shutil
from pathlib import Path

BASELINE = "baseline"  # RUN_DIR/eval/baseline/: the canary before the first training step
BASELINE_STEP = -1  # the step its metrics line carries in metrics.jsonl (eval after step s is logged at step s)
STOP_BENCHMARK = "gsm8k"  # the benchmark the stop rule watches


def canary_dir(run_dir: str | Path, step: int) -> Path:
    """Where the canary after `step` (BASELINE_STEP: before training) writes its per-item files."""
    name = BASELINE if step == BASELINE_STEP else f"step_{step:06d}"
    return Path(run_dir) / "eval" / name


def read_rows(eval_dir: Path, bench: str) -> list[dict] | None:
    """The per-item rows of one benchmark of a finished canary; None if it is not there (eval.json is written last,
    so a canary cut off midway counts as missing)."""
    path = eval_dir / f"{bench}.jsonl"
    if not (eval_dir / "eval.json").is_file() or not path.is_file():
        return None
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def baseline_rows(run_dir: str | Path, benches) -> dict[str, list[dict]]:
    """The baseline canary's rows of every benchmark it has; {} if the run has no baseline."""
    base = canary_dir(run_dir, BASELINE_STEP)
    found = {bench: read_rows(base, bench) for bench in benches}
    return {bench: rows for bench, rows in found.items() if rows is not None}


def net_vs_base(base_rows: list[dict], rows: list[dict]) -> int:
    """Items right now and wrong in the baseline, minus items right in the baseline and wrong now, over the items
    both answered (paired by id)."""
    base = {r["id"]: bool(r["correct"]) for r in base_rows}
    pairs = [(base[r["id"]], bool(r["correct"])) for r in rows if r["id"] in base]
    return sum(now and not then for then, now in pairs) - sum(then and not now for then, now in pairs)


def canary_metrics(summary: dict[str, dict], rows: dict[str, list[dict]], base: dict[str, list[dict]]) -> dict:
    """One canary's metrics: eval/<bench> (accuracy), eval/format_rate/<bench>, and eval/net_vs_base/<bench> for
    every benchmark the baseline has."""
    metrics = {f"eval/{name}": s["accuracy"] for name, s in summary.items()}
    metrics.update({f"eval/format_rate/{name}": s["format_rate"] for name, s in summary.items()})
    metrics.update({f"eval/net_vs_base/{name}": net_vs_base(base[name], rows[name]) for name in summary
                    if name in base})
    return metrics


def history(run_dir: str | Path, bench: str = STOP_BENCHMARK) -> list[tuple[int, int]]:
    """(step, net vs the baseline) of every finished canary after a training step, in step order; [] without a
    baseline."""
    base = baseline_rows(run_dir, [bench]).get(bench)
    if base is None:
        return []
    out = []
    for step, path in _step_dirs(run_dir):
        rows = read_rows(path, bench)
        if rows is not None:
            out.append((step, net_vs_base(base, rows)))
    return out


def should_stop(nets: list[int], stop_items: int) -> bool:
    """The stop rule: on each of the last two canaries at least `stop_items` items lost net; never when 0 (off)."""
    return stop_items > 0 and len(nets) >= 2 and all(-net >= stop_items for net in nets[-2:])


def drop_after(run_dir: str | Path, step: int) -> list[str]:
    """Remove the canaries of steps after `step`, like metrics.jsonl's lines (a resumed run redoes those steps; a
    fresh run passes BASELINE_STEP - 1 and loses its baseline too), so that `history` only sees this run's canaries.
    Returns the names of the folders removed."""
    gone = [(s, p) for s, p in _step_dirs(run_dir) if s > step]
    base = canary_dir(run_dir, BASELINE_STEP)
    if step < BASELINE_STEP and base.is_dir():
        gone.append((BASELINE_STEP, base))
    for _, path in gone:
        shutil.rmtree(path)
    return [p.name for _, p in gone]


def _step_dirs(run_dir: str | Path) -> list[tuple[int, Path]]:
    root = Path(run_dir) / "eval"
    if not root.is_dir():
        return []
    found = [(p.name.removeprefix("step_"), p) for p in root.glob("step_*") if p.is_dir()]
    return sorted((int(s), p) for s, p in found if s.isdigit())
