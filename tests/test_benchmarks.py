"""Benchmark loading, answer extraction and scoring on hand-written completions (the messy forms small models write),
and the evaluation loop over a scripted policy. Real sandbox for CRUXEval checks; no model."""

import json

import pytest

from conftest import ScriptedPolicy
from minazr.eval import benchmarks
from minazr.eval.benchmarks import DATA_DIR, DataError, final_number, gsm8k_gold
from minazr.eval.evaluate import evaluate, label, score, table, wilson
from minazr.selfplay.parsing import ParseError
from minazr.contracts.policy import Completion


def _score(name, item, texts, executor):
    bench = benchmarks.get(name)
    comps = [Completion(t, [], []) for t in texts]
    return score(bench, [item] * len(texts), ["p"] * len(texts), comps, executor, 5.0)


# ---------------------------------------------------------------- data


def test_shipped_data_loads_in_full_with_licences():
    assert len(benchmarks.get("gsm8k").load()) == 1319
    assert len(benchmarks.get("cruxeval-o").load()) == 800
    assert len(benchmarks.get("cruxeval-i").load(limit=5)) == 5
    assert "MIT" in (DATA_DIR / "LICENSE.gsm8k").read_text()
    assert "MIT" in (DATA_DIR / "LICENSE.cruxeval").read_text()


def test_gsm8k_gold_answers():
    items = benchmarks.get("gsm8k").load(limit=3)
    assert [i.gold for i in items] == ["18", "3", "70000"]  # "#### 70000" (the third needs no comma removal)
    assert gsm8k_gold("so...\n#### 1,234") == "1234"
    assert gsm8k_gold("#### -3.5") == "-3.5"


@pytest.mark.parametrize("content,expected", [
    ('{"question": "q"}\n', "missing or non-text field 'answer'"),
    ('{"question": "q", "answer": "no mark"}\n', "no '#### number' line"),
    ("not json\n", "not valid JSON"),
    ("\n\n", "no items"),
])
def test_bad_gsm8k_files_give_one_line_errors(tmp_path, content, expected):
    (tmp_path / "gsm8k_test.jsonl").write_text(content)
    with pytest.raises(DataError, match=expected) as e:
        benchmarks.get("gsm8k").load(tmp_path)
    assert "\n" not in str(e.value) and str(tmp_path) in str(e.value)


def test_missing_data_dir_and_unknown_benchmark(tmp_path):
    with pytest.raises(DataError, match="benchmark file not found"):
        benchmarks.get("cruxeval-o").load(tmp_path)
    with pytest.raises(DataError, match="unknown benchmark 'mmlu'"):
        benchmarks.get("mmlu")


# ---------------------------------------------------------------- GSM8K extraction and scoring


@pytest.mark.parametrize("text,value", [
    ("<answer>18</answer>", 18),
    ("<think>16-3-4=9, 9*2=18</think> <answer>18</answer>", 18),
    ("<answer>$1,234.50</answer>", 1234.5),
    ("<answer>She makes 18 dollars.</answer>", 18),
    ("<answer>16 - 3 - 4 = 9 eggs, 9 * 2 = 18</answer>", 18),  # several numbers: the last one
    ("<answer>The answer is 18, since 9 eggs at $2</answer>", 18),  # a stated answer beats later numbers
    ("<answer>18", 18),  # unclosed tag (truncated completion)
    ("She sells 9 eggs at $2, so she makes $18 every day.", 18),  # no tags at all
    ("9 * 2 = 18\n#### 18", 18),
    ("The final answer is \\boxed{1,000}. Check: 500 + 500 = 1000", 1000),
    ("The answer is: 3/4", 0.75),
    ("<answer></answer> so the total is 42", 42),  # empty tag: fall back to the text
])
def test_gsm8k_extraction_messy_forms(text, value):
    assert benchmarks.get("gsm8k-train").extract(text).answer == pytest.approx(value)


def test_gsm8k_extraction_reports_format_and_failures():
    bench = benchmarks.get("gsm8k-train")
    assert bench.extract("<answer>5</answer>").strict and not bench.extract("it is 5").strict
    with pytest.raises(ParseError):
        bench.extract("I do not know.")
    assert final_number("x = 1,000,000 apples") == 1_000_000


def test_gsm8k_scoring_right_and_wrong(executor):
    item = benchmarks.get("gsm8k").load(limit=1)[0]  # gold 18
    rows = _score("gsm8k-train", item, ["<answer>18</answer>", "<answer>$18.00</answer>", "so 18 dollars",
                                  "<answer>9</answer>", "no idea", "<answer>18</answer> wait, 20"], executor)
    assert [r["correct"] for r in rows] == [True, True, True, False, False, True]
    assert rows[4]["extracted"] is None and rows[4]["error"].startswith("unparseable")
    assert [r["strict_format"] for r in rows] == [True, True, False, True, False, True]


# ---------------------------------------------------------------- CRUXEval-O


def _crux(name, idx=0):
    return benchmarks.get(name).load(limit=idx + 1)[idx]


@pytest.mark.parametrize("text,right", [
    ("<answer>[(4, 1), (4, 1), (4, 1), (4, 1), (2, 3), (2, 3)]</answer>", True),
    ("<answer>[(4,1),(4,1),(4,1),(4,1),(2,3),(2,3)]</answer>", True),  # spacing differs: equal by value
    ("<answer>f([1, 1, 3, 1, 3, 1]) == [(4, 1), (4, 1), (4, 1), (4, 1), (2, 3), (2, 3)]</answer>", True),
    ("<answer>\n```python\n[(4, 1), (4, 1), (4, 1), (4, 1), (2, 3), (2, 3)]\n```\n</answer>", True),
    ("The output is:\nassert f([1, 1, 3, 1, 3, 1]) == [(4, 1), (4, 1), (4, 1), (4, 1), (2, 3), (2, 3)]", True),
    ("The output is [(4, 1), (4, 1), (4, 1), (4, 1), (2, 3), (2, 3)].", True),  # no tags, trailing period
    ("So `f` returns `[(4, 1), (4, 1), (4, 1), (4, 1), (2, 3), (2, 3)]` for it.", True),  # inline code
    ("<answer>[(4, 1), (2, 3)]</answer>", False),
    ("<answer>[[4, 1], [4, 1], [4, 1], [4, 1], [2, 3], [2, 3]]</answer>", False),  # lists are not tuples
    ("<answer>a list of pairs</answer>", False),
])
def test_cruxeval_o_scoring(executor, text, right):
    (row,) = _score("cruxeval-o-train", _crux("cruxeval-o-train"), [text], executor)
    assert row["correct"] is right, row


# ---------------------------------------------------------------- CRUXEval-I


@pytest.mark.parametrize("text,right", [
    ("<answer>[1, 1, 3, 1, 3, 1]</answer>", True),
    ("<answer>[3, 1, 1, 3, 1, 1]</answer>", True),  # any input that gives the output counts
    ("<answer>f([1, 3, 1, 3, 1, 1])</answer>", True),
    ("So f([1, 1, 1, 1, 3, 3]) == [(4, 1), (4, 1), (4, 1), (4, 1), (2, 3), (2, 3)]", True),  # no tags
    ("<answer>\n```input\n[1, 1, 3, 1, 3, 1]\n```\n</answer>", True),
    ("Calling `f` with `[1, 1, 1, 3, 1, 3]` works.", True),
    ("<answer>[1, 3]</answer>", False),
    ("<answer>nums</answer>", False),  # a name, not a literal
    ("<answer>__import__('os').system('id')</answer>", False),  # code is never run as an input
])
def test_cruxeval_i_scoring(executor, text, right):
    (row,) = _score("cruxeval-i-train", _crux("cruxeval-i-train"), [text], executor)
    assert row["correct"] is right, row


# Items whose own gold answer cannot score: 13 gold inputs are expressions or empty (`dict(a=1)`, `range(3)`), one
# program needs the shift_jis codec, one names a parameter `input` (a banned name).
UNSCORABLE_I = {"sample_135", "sample_152", "sample_239", "sample_258", "sample_344", "sample_364", "sample_378",
                "sample_459", "sample_522", "sample_694", "sample_720", "sample_760", "sample_770", "sample_621",
                "sample_782"}


def test_cruxeval_gold_answers_score_correct(executor):
    """The data's own answers, written as a model would, are judged right: all 1,600 items (the judge's strict
    literal reader and its sandbox must not turn a right answer wrong)."""
    for name, unscorable in (("cruxeval-o-train", set()), ("cruxeval-i-train", UNSCORABLE_I)):
        bench = benchmarks.get(name)
        items = bench.load()
        rows = score(bench, items, [""] * len(items),
                     [Completion(f"<think>easy</think> <answer>{i.gold}</answer>", [], []) for i in items],
                     executor, 5.0)
        wrong = {r["id"]: r["error"] for r in rows if not r["correct"]}
        assert set(wrong) == unscorable, (name, {k: v for k, v in wrong.items() if k not in unscorable})


# ---------------------------------------------------------------- the evaluation loop


def test_evaluate_with_a_scripted_policy(executor, tmp_path):
    """Prompts are the training solver prompts; chunks reassemble in order; summary figures add up."""
    loaded = {n: (benchmarks.get(n), benchmarks.get(n).load(limit=5)) for n in ("gsm8k-train", "cruxeval-o-train")}
    golds = {it.entry.data.get("problem", it.entry.data.get("program")): it.gold
             for _, items in loaded.values() for it in items}

    def script(prompt, n):  # right on every other item, by looking the gold up from the prompt
        gold = next(g for key, g in golds.items() if key in prompt)
        return [f"<answer>{gold}</answer>" if len(prompt) % 2 else "<answer>nope</answer>"]

    policy = ScriptedPolicy(script)
    reports = evaluate(policy, executor, lambda s: "<<" + s + ">>", loaded, max_tokens=16, chunk=2, progress=False)
    assert [len(c) for c in policy.calls] == [2, 2, 1, 2, 2, 1]
    for name, rep in reports.items():
        assert rep.n == 5
        assert all(r["prompt"].startswith("<<## Task") for r in rep.rows)
        expected = [len(r["prompt"]) % 2 == 1 for r in rep.rows]
        assert [r["correct"] for r in rep.rows] == expected
        s = rep.summary()
        assert s["correct"] == sum(expected) and s["n"] == 5 and s["ci95"][0] <= s["accuracy"] <= s["ci95"][1]
        assert json.dumps(rep.rows)  # every row is JSON-serialisable
    assert "| model | gsm8k-train | cruxeval-o-train |" in table({"base": {n: r.summary() for n, r in reports.items()}})


def test_wilson_interval_and_labels():
    lo, hi = wilson(25, 100)
    assert 0.17 < lo < 0.18 and 0.34 < hi < 0.35
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0
    assert label("runs/latest/") == "runs_latest" and label("Qwen/Qwen2.5-0.5B") == "Qwen_Qwen2.5-0.5B"
