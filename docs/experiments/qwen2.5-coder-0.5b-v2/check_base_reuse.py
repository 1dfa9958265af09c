"""Is the stored standard-prompt evaluation of the base model what today's code would produce? Re-renders every
prompt, re-scores every stored completion with today's extractor and judge (real sandbox), and compares.

    .venv/bin/python docs/experiments/qwen2.5-coder-0.5b-v2/check_base_reuse.py      # from the repository root
"""
import gzip
import json

from transformers import AutoTokenizer
from minazr.driver.config import load_config
from minazr.driver.models import resolve_model
from minazr.selfplay.prompts import Renderer
from minazr.eval.evaluate import load_benchmarks, score
from minazr.sandbox.executor import from_config
from minazr.contracts.policy import Completion

cfg = load_config("./configs/cpu_qwen2.5-coder-0.5b.yaml", [])
tok = AutoTokenizer.from_pretrained(resolve_model(cfg.model.name))
render = Renderer.from_config(cfg.selfplay, tok)
ex = from_config(cfg.executor)
src = "./docs/experiments/qwen2.5-coder-0.5b-base-harness"
for name, (bench, items) in load_benchmarks(["cruxeval-o", "cruxeval-i", "gsm8k"], None, None).items():
    rows = [json.loads(l) for l in gzip.open(f"{src}/{name}.jsonl.gz", "rt")]
    assert [r["id"] for r in rows] == [it.id for it in items], name
    prompts = [bench.render(it, render) for it in items]
    same_prompts = sum(p == r["prompt"] for p, r in zip(prompts, rows))
    comps = [Completion(text=r["completion"], token_ids=[], logprobs=[], finish_reason=r["finish_reason"]) for r in rows]
    new = score(bench, items, prompts, comps, ex, cfg.executor.timeout_s)
    same = sum(str(a["correct"]) == str(b["correct"]) for a, b in zip(new, rows))
    print(name, "items", len(rows), "prompts identical", same_prompts, "verdicts identical", same,
          "correct now", sum(r["correct"] for r in new), "stored", sum(bool(r["correct"]) for r in rows), flush=True)
ex.close()
