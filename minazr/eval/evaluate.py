"""`minazr eval`: greedy pass@1 on GSM8K and CRUXEval through the rollout workers, for one model or several.

    minazr eval --config configs/default.yaml --benchmarks gsm8k,cruxeval-o,cruxeval-i --limit 100 --out runs/eval
    minazr eval --model smollm2-135m-instruct --model runs/latest --limit 100 --out runs/compare

A model is the embedded default's name, a Hugging Face directory, a hub id, a training run directory (its latest
checkpoint) or one checkpoint directory. Each benchmark item is shown to the model as the solver prompt of the
matching training task (minazr/eval/benchmarks.py), rendered with `selfplay.prompt_template`, generated greedily by
`rollout.num_workers` vLLM workers in chunks of `eval.chunk` prompts, and judged by the training task's own code
(CRUXEval in the sandbox). Writes, per model, DIR/eval.json ({benchmark: {accuracy, n, ci95, format_rate}}) and
DIR/<benchmark>.jsonl (id, prompt, completion, extracted answer, correct); with several models each gets
DIR/<label>/ and DIR/comparison.json + a comparison table. `minazr train` reuses `evaluate` every `eval.every` steps.
"""

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from minazr.eval import benchmarks
from minazr.driver import checkpoint
from minazr.eval.benchmarks import Benchmark, Item
from minazr.driver.models import ModelError, resolve_model
from minazr.selfplay.parsing import ParseError
from minazr.contracts.policy import GenRequest, Sampling
from minazr.selfplay.prompts import Renderer


@dataclass
class Report:
    benchmark: str
    rows: list[dict] = field(default_factory=list)  # one per item, as written to <benchmark>.jsonl
    seconds: float = 0.0

    @property
    def n(self) -> int:
        return len(self.rows)

    @property
    def accuracy(self) -> float:
        return sum(r["correct"] for r in self.rows) / max(1, self.n)

    def summary(self) -> dict:
        k = sum(r["correct"] for r in self.rows)
        return {"accuracy": self.accuracy, "n": self.n, "correct": k, "ci95": list(wilson(k, self.n)),
                "format_rate": sum(r["strict_format"] for r in self.rows) / max(1, self.n),
                "answered_rate": sum(r["extracted"] is not None for r in self.rows) / max(1, self.n),
                "truncated_rate": sum(r["finish_reason"] == "length" for r in self.rows) / max(1, self.n),
                "sandbox_failures": sum(bool(r.get("sandbox_failure")) for r in self.rows),
                "seconds": round(self.seconds, 2)}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k/n (sane at 0 and n, unlike the normal approximation)."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def load_benchmarks(names: list[str], data_dir: str | None, limit: int | None) -> dict[str, tuple[Benchmark, list]]:
    """Every benchmark's items, loaded before any engine starts so a bad file fails at once."""
    out = {}
    for name in names:
        bench = benchmarks.get(name)
        out[name] = (bench, bench.load(data_dir, limit))
    return out


def evaluate(policy, executor, render, loaded: dict[str, tuple[Benchmark, list[Item]]], max_tokens: int,
             chunk: int = 256, timeout_s: float = 5.0, progress: bool = True) -> dict[str, Report]:
    """Greedy pass@1 of `policy` (anything with Policy.generate) on each loaded benchmark."""
    reports = {}
    for name, (bench, items) in loaded.items():
        t0 = time.perf_counter()
        sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=min(max_tokens, bench.max_tokens or max_tokens),
                            stop=bench.stop)
        prompts = [bench.render(it, render) for it in items]
        completions = []
        with tqdm(total=len(items), desc=f"eval {name}", unit="item", dynamic_ncols=True, disable=not progress,
                  leave=False) as bar:
            for start in range(0, len(items), chunk):
                gens = policy.generate([GenRequest(p, 1) for p in prompts[start:start + chunk]], sampling)
                completions += [g.completions[0] for g in gens]
                bar.update(len(gens))
        rows = score(bench, items, prompts, completions, executor, timeout_s)
        reports[name] = Report(name, rows, time.perf_counter() - t0)
    return reports


def score(bench: Benchmark, items: list[Item], prompts: list[str], completions, executor, timeout_s: float):
    """Extract every answer, run every check in one executor batch, judge; one row per item."""
    rows, pending = [], []
    for item, prompt, comp in zip(items, prompts, completions):
        row = {"id": item.id, "prompt": prompt, "completion": comp.text, "extracted": None, "strict_format": False,
               "gold": item.gold, "correct": False, "finish_reason": comp.finish_reason, "error": "",
               "sandbox_failure": False}
        try:
            ext = bench.extract(comp.text)
        except ParseError as e:
            row["error"] = f"unparseable: {e}"
        except Exception as e:  # any completion is model text: one that breaks the parser is that item's failure
            row["error"] = f"unparseable: unexpected {type(e).__name__}"
        else:
            row["extracted"], row["strict_format"] = ext.answer, ext.strict
            pending.append((row, item, ext.answer, bench.jobs(item, ext.answer)))
        rows.append(row)
    results = executor.map([j for *_, jobs in pending for j in jobs], timeout_s) if pending else []
    at = 0
    for row, item, answer, jobs in pending:
        res, at = results[at:at + len(jobs)], at + len(jobs)
        try:
            row["correct"] = bool(bench.correct(item, answer, res))
        except Exception as e:  # a judging bug on one item is that item's error, not the end of the evaluation
            row["error"] = f"judge error: {type(e).__name__}: {e}"
        row["sandbox_failure"] = any(r.infra for r in res)
        failed = next((r.error for r in res if not r.ok), None)
        if failed and not row["correct"]:
            row["error"] = failed
    return rows


# ---------------------------------------------------------------- models and output


def resolve_eval_model(spec: str) -> Path:
    """A model directory for `spec`: a run dir (latest checkpoint), a checkpoint dir, or what resolve_model takes."""
    path = Path(spec)
    if path.is_dir() and (path / "checkpoints").is_dir():
        ckpt = checkpoint.latest(path)
        if ckpt is None:
            raise ModelError(f"{spec}: run directory has no complete checkpoint")
        return ckpt / "model"
    if path.is_dir() and (path / "model" / "config.json").is_file():
        return path / "model"
    return resolve_model(spec)


def label(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", spec).strip("_.") or "model"


def write_reports(out: Path, reports: dict[str, Report], model: str) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    summary = {name: r.summary() for name, r in reports.items()}
    for name, r in reports.items():
        with (out / f"{name}.jsonl").open("w") as fh:
            for row in r.rows:
                fh.write(json.dumps(row) + "\n")
    tmp = out / "eval.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(out / "eval.json")
    (out / "model.txt").write_text(model + "\n")
    return summary


def table(results: dict[str, dict]) -> str:
    """Markdown: one row per model, one column per benchmark: accuracy [95% CI] (n)."""
    names = list(next(iter(results.values())))
    lines = ["| model | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for model, summary in results.items():
        cells = []
        for n in names:
            s = summary.get(n)
            cells.append(f"{100 * s['accuracy']:.1f}% [{100 * s['ci95'][0]:.1f}, {100 * s['ci95'][1]:.1f}] "
                         f"(n={s['n']})" if s else "-")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_eval(cfg, models: list[str], names: list[str], limit: int | None, data_dir: str | None, out: str) -> dict:
    """Evaluate each model in turn on fresh rollout workers; returns {model: {benchmark: summary}}."""
    from transformers import AutoTokenizer

    from minazr.sandbox.executor import from_config as executor_from_config
    from minazr.driver.ray_session import connect_ray
    from rollout.worker import start_pool

    loaded = load_benchmarks(names, data_dir, limit)
    paths = {spec: resolve_eval_model(spec) for spec in models}  # every model checked before any engine starts
    if len(set(map(label, models))) < len(models):
        raise ModelError("two models map to the same output folder name; name them differently")
    connect_ray(cfg.train)
    results = {}
    with executor_from_config(cfg.executor) as executor:
        for spec, path in paths.items():
            print(f"minazr eval: {spec} ({path})", flush=True)
            render = Renderer.from_config(cfg.selfplay, AutoTokenizer.from_pretrained(path))
            pool = start_pool(path, cfg.rollout, cfg.run.seed)
            try:
                reports = evaluate(pool, executor, render, loaded, cfg.eval.max_tokens, cfg.eval.chunk,
                                   cfg.executor.timeout_s)
            finally:
                pool.close()
            where = Path(out) if len(models) == 1 else Path(out) / label(spec)
            results[spec] = write_reports(where, reports, spec)
    if len(models) > 1:
        (Path(out) / "comparison.json").write_text(json.dumps(results, indent=2) + "\n")
        (Path(out) / "comparison.md").write_text(table(results) + "\n")
    print(table(results))
    print(f"minazr eval: wrote {out}/" + ("eval.json and <benchmark>.jsonl" if len(models) == 1 else
                                          "<model>/eval.json, <model>/<benchmark>.jsonl, comparison.json/.md"))
    return results
