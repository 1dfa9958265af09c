"""Executor throughput: sandboxed programs per second through the pool, determinism double-run included.

    minazr bench-executor --programs 2000 [--out DIR] [executor.workers=4]

The programs are small valid ones of the kinds AZR proposes (string, list, dict, recursion, a class inside f), each
with its own text; each is a `Run` with the configured number of determinism runs, exactly as proposal validation
does it: static check, two sandboxed runs at once, outputs parsed and compared by the judge.
Then what validating one proposal costs (selfplay.step.validate beside 3 references), an honest one against the
most expensive hostile ones the validation budget stops (`validation` in the JSON).
"""

import json
import os
import time
from pathlib import Path

from tqdm import tqdm

from minazr.driver.config import ExecutorConfig
from minazr.sandbox.executor import Run, from_config

PROGRAMS = [
    ("def f(s):\n    return s[::-1] + s.upper() + '{i}'", "'abc{i}'"),
    ("def f(xs):\n    return sorted(x * x for x in xs + [{i}])", "[{i}, 3, -2, 7]"),
    ("def f(d, k):\n    d = dict(d)\n    d[k] = len(d) + {i}\n    return d", "{{'a': 1}}, 'k{i}'"),
    ("def f(n):\n    if n < 2:\n        return n + {i} - {i}\n    return f(n - 1) + f(n - 2)", "{small}"),
    ("def f(x):\n    class Box:\n        def __init__(self, v):\n            self.v = v + {i}\n"
     "    return [Box(v).v for v in range(x % 5)]", "{i}"),
]


def _jobs(n: int, runs: int) -> list[Run]:
    """n jobs, every program's text distinct (as proposals are), so no per-text cache flatters the figure."""
    jobs = []
    for i in range(n):
        code, inputs = PROGRAMS[i % len(PROGRAMS)]
        jobs.append(Run(code.format(i=i), inputs.format(i=i, small=i % 12), runs))
    return jobs


def run_bench(cfg: ExecutorConfig, n: int, out_dir: str | None = None) -> dict:
    with from_config(cfg) as ex:
        ex.map(_jobs(min(n, 50), cfg.determinism_runs), cfg.timeout_s)  # warm-up
        jobs = _jobs(n, cfg.determinism_runs)
        t0 = time.perf_counter()
        results = []
        with tqdm(total=n, desc="programs", unit="prog") as bar:
            for start in range(0, n, 100):
                results += ex.map(jobs[start:start + 100], cfg.timeout_s)
                bar.update(len(jobs[start:start + 100]))
        elapsed = time.perf_counter() - t0
    failed = [r.error for r in results if not r.ok]
    report = {
        "programs": n,
        "programs_per_s": n / elapsed,
        "executions_per_s": n * cfg.determinism_runs / elapsed,
        "determinism_runs": cfg.determinism_runs,
        "servers": ex.workers,
        "cpus": os.cpu_count(),
        "failed": len(failed),
        "elapsed_s": elapsed,
    }
    print(f"{n} programs in {elapsed:.2f} s: {report['programs_per_s']:.0f} programs/s "
          f"({report['executions_per_s']:.0f} sandboxed executions/s, {ex.workers} servers, "
          f"{cfg.determinism_runs} runs each), {len(failed)} failed")
    if failed:
        print(f"first failure: {failed[0]}")
    report["validation"] = validation_costs(cfg, cfg.probe_timeout_s, cfg.validation_budget_s)
    honest = report["validation"]["honest"]
    print(f"validating one proposal beside 3 references: honest {honest['server_s']:.2f} server-s "
          f"({honest['wall_s']:.2f} s)")
    for name in HOSTILE:
        v = report["validation"][name]
        print(f"  {name}: {v['server_s']:.2f} server-s ({v['x_honest_server_s']:.1f}x honest), "
              f"{v['wall_s']:.2f} s; {v['outcome']}")
    if out_dir:
        path = Path(out_dir) / "bench_executor.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2))
    return report


# ---------------------------------------------------------------- what validating one proposal costs

HONEST = ("def f(xs):\n    out = []\n    for x in xs:\n        if x % 3:\n            out.append(x * 2)\n"
          "    return sorted(out)", "[4, 5, 6, 7]")
# the most expensive proposals the validation budget has to stop (docs/selfplay.md: "validation budget")
HOSTILE = {
    "spins on every input but its own": ("def f(xs):\n    if xs != [4, 5, 6, 7]:\n        while True:\n"
                                         "            pass\n    return xs[::-1] * 2", "[4, 5, 6, 7]"),
    "spins on the references' inputs": ("def f(xs):\n    if isinstance(xs, str) or len(xs) > 4:\n"
                                        "        while True:\n            pass\n    return xs[::-1] * 2",
                                        "[4, 5, 6, 7]"),
    "runs about as long as the probe timeout": ("def f(xs):\n    n = 0\n    for i in range(2_000_000):\n"
                                                "        n += i % 7\n    return xs[::-1] * 2 + [n % 5]",
                                                "[4, 5, 6, 7]"),
}
REFERENCES = [{"program": PROGRAMS[0][0].format(i=1), "inputs": PROGRAMS[0][1].format(i=1)},
              {"program": PROGRAMS[1][0].format(i=2), "inputs": PROGRAMS[1][1].format(i=2)},
              {"program": PROGRAMS[2][0].format(i=3), "inputs": PROGRAMS[2][1].format(i=3)}]


def validation_costs(cfg: ExecutorConfig, probe_timeout_s: float, budget_s: float, repeats: int = 3) -> dict:
    """Server-seconds and wall seconds of validating one deduction proposal beside 3 references (the real
    selfplay.step.validate: probe inputs, behaviour runs, confirmations), honest against the hostile ones above;
    each the median of `repeats`. Server-seconds: the wall seconds each run held its sandbox server."""
    from minazr.contracts.policy import ScoredSample
    from minazr.selfplay.step import Limits, _Proposal, validate
    from minazr.selfplay.tasks import make_task

    task = make_task("deduction")
    limits = Limits(probe_timeout_s, budget_s)
    out = {}
    with from_config(cfg) as ex:
        ex.map(_jobs(20, cfg.determinism_runs), cfg.timeout_s)  # warm-up
        for name, (code, inputs) in [("honest", HONEST), *HOSTILE.items()]:
            walls, costs, reasons = [], [], []
            for _ in range(repeats):
                spent = _Spending(ex)
                p = _Proposal(task, {"references": [dict(r, output="") for r in REFERENCES]},
                              ScoredSample("deduction", "propose", 0, "", "", [], [], [], 0),
                              {"program": code, "inputs": inputs})
                t0 = time.perf_counter()
                validate([p], spent, cfg.timeout_s, step=0, confirm_runs=cfg.confirm_runs, limits=limits)
                walls.append(time.perf_counter() - t0)
                costs.append(spent.cost_s)
                reasons.append(p.reason or "valid")
            out[name] = {"server_s": sorted(costs)[len(costs) // 2], "wall_s": sorted(walls)[len(walls) // 2],
                         "outcome": reasons[-1]}
    honest = out["honest"]
    for name in HOSTILE:
        out[name]["x_honest_server_s"] = out[name]["server_s"] / max(honest["server_s"], 1e-9)
        out[name]["x_honest_wall_s"] = out[name]["wall_s"] / max(honest["wall_s"], 1e-9)
    return out


class _Spending:
    """An executor that adds up the server-seconds of every job it runs: wall seconds its runs held servers."""

    def __init__(self, ex):
        self.ex, self.cost_s = ex, 0.0

    def map(self, jobs, timeout_s, budgets=None):
        results = self.ex.map(jobs, timeout_s, budgets=budgets)
        self.cost_s += sum(r.server_s for r in results)
        return results
