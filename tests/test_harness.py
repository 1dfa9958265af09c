"""The standard (harness) evaluation prompts: their examples are right, they never show the item's answer, and the
answer a model writes in the harness format is read and judged right (all 1,600 CRUXEval gold answers). Real
sandbox for the checks; no model."""

import pytest

from conftest import ScriptedPolicy
from minazr.eval import benchmarks, harness
from minazr.eval.evaluate import evaluate, score
from minazr.sandbox.executor import Run
from minazr.selfplay.parsing import ParseError
from minazr.contracts.policy import Completion
from minazr.selfplay.prompts import SYSTEM, Renderer
from test_benchmarks import UNSCORABLE_I


def test_few_shot_examples_are_right(executor):
    """A wrong worked example would teach the model a wrong answer: each one runs to its stated output."""
    results = executor.map([Run(prog, x) for prog, x, _, _ in harness._EXAMPLES], 5.0)
    assert [r.output for r in results] == [y for _, _, y, _ in harness._EXAMPLES]


@pytest.mark.parametrize("name", ["cruxeval-o", "cruxeval-o-cot", "cruxeval-i", "cruxeval-i-cot"])
def test_cruxeval_prompts_hide_the_answer_and_follow_the_harness_format(name):
    bench = benchmarks.get(name)
    for item in bench.load(limit=20):
        text = bench.render(item, render=None)  # raw text: no template is applied
        d = item.entry.data
        query = text.rsplit("[PYTHON]", 1)[1]
        assert d["program"] in query and "??" in query
        if name.startswith("cruxeval-o"):
            assert f"assert f({d['inputs']}) == ??" in query and d["output"] not in query.split("== ??")[1]
        else:
            assert f"assert f(??) == {d['output']}" in query
        assert text.endswith("[THOUGHT]\n" if name.endswith("cot") else "[ANSWER]\n")
        assert text.count("\n[/ANSWER]\n") == 2 and SYSTEM not in text  # the two examples only
    assert bench.stop == ("[/ANSWER]",)


@pytest.mark.parametrize("completion,answer,strict", [
    ("assert f(3) == 4\n", "4", True),
    ("assert f(3) == [1, (2, 'x')]", "[1, (2, 'x')]", True),
    ("  assert f('a', 2) == 'aa'  \n", "'aa'", True),
    ("4", "4", False),  # a bare literal: read, but not in the format
    ("The output is 4", "4", False),
])
def test_output_extraction_direct(completion, answer, strict):
    assert harness.extract_output(completion, cot=False) == (answer, strict)


def test_output_extraction_cot_needs_the_answer_tag_for_strict():
    text = "f adds one to 3.\n[/THOUGHT]\n[ANSWER]\nassert f(3) == 4\n"
    assert harness.extract_output(text, cot=True) == ("4", True)
    assert harness.extract_output("f adds one, so assert f(3) == 4", cot=True) == ("4", False)
    with pytest.raises(ParseError):
        harness.extract_output("I cannot tell.", cot=True)


@pytest.mark.parametrize("completion,args", [
    ("assert f([1, 2]) == 3", "[1, 2]"),
    ("assert f('a)b', 2) == 'x'", "'a)b', 2"),  # a parenthesis inside a string does not end the call
    ("reasoning...\n[/THOUGHT]\n[ANSWER]\nassert f((1, 2), {'k': 0}) == 5\n", "(1, 2), {'k': 0}"),
])
def test_input_extraction(completion, args):
    assert harness.extract_input(completion, cot="THOUGHT" in completion)[0] == args


def test_input_extraction_never_takes_code_as_an_input():
    with pytest.raises(ParseError):  # and the output on the right is not read as an input either
        harness.extract_input("assert f(__import__('os').getcwd()) == 1", cot=False)


def test_gold_answers_in_harness_format_score_right(executor):
    """Every CRUXEval item's own answer, written as the harness asks, is judged right (the same items as the
    in-format test cannot score: their gold inputs are not literals)."""
    for name, unscorable in (("cruxeval-o", set()), ("cruxeval-i", UNSCORABLE_I)):
        bench = benchmarks.get(name)
        items = bench.load()
        texts = [f"assert f({i.entry.data['inputs']}) == {i.entry.data['output']}\n" for i in items]
        rows = score(bench, items, [""] * len(items), [Completion(t, [], []) for t in texts], executor, 5.0)
        wrong = {r["id"] for r in rows if not r["correct"]}
        assert wrong == unscorable, (name, wrong ^ unscorable)
        assert all(r["strict_format"] for r in rows if r["id"] not in unscorable)


class _Tokenizer:
    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        return "".join(f"<|{m['role']}|>{m['content']}" for m in messages) + "<|assistant|>"


def test_gsm8k_standard_prompt_and_extraction():
    bench = benchmarks.get("gsm8k")
    item = bench.load(limit=1)[0]
    chat = bench.render(item, Renderer("chat", _Tokenizer()))
    assert chat.startswith("<|user|>") and "<|system|>" not in chat and "step by step" in chat
    assert item.entry.data["problem"] in chat and "<answer>" not in chat
    raw = bench.render(item, Renderer("r1"))
    assert raw.startswith("Question: ") and raw.endswith("Let's think step by step.")
    assert bench.extract("16 - 3 - 4 = 9, 9 * 2 = 18.\nThe answer is 18.") == benchmarks.Extraction(18, True)
    assert bench.extract("9 * 2 = 18 dollars") == benchmarks.Extraction(18, False)


def test_evaluate_sends_each_benchmark_its_stop_strings_and_token_cap(executor):
    seen = []

    class Recording(ScriptedPolicy):
        def generate(self, requests, sampling):
            seen.append(sampling)
            return super().generate(requests, sampling)

    loaded = {n: (benchmarks.get(n), benchmarks.get(n).load(limit=2)) for n in ("cruxeval-o", "gsm8k-train")}
    policy = Recording(lambda prompt, n: ["assert f(1) == 2\n"])
    reports = evaluate(policy, executor, lambda s: "<<" + s + ">>", loaded, max_tokens=512, progress=False)
    assert [(s.stop, s.max_tokens, s.temperature) for s in seen] == [(("[/ANSWER]",), 256, 0.0), ((), 512, 0.0)]
    assert reports["cruxeval-o"].rows[0]["prompt"].startswith("Each block below")  # raw: no template
    assert reports["gsm8k-train"].rows[0]["prompt"].startswith("<<## Task")
