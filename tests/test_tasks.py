"""Task registry, prompts and templates."""

import pytest

from minazr.selfplay.prompts import SYSTEM, Renderer
from minazr.selfplay.parsing import ParseError
from minazr.selfplay.tasks import TASKS, make_task


def test_registry_has_the_four_tasks():
    assert set(TASKS) == {"deduction", "abduction", "induction", "math"}
    with pytest.raises(KeyError, match="unknown task"):
        make_task("poetry")


class FakeTokenizer:
    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        assert not tokenize and add_generation_prompt
        return "".join(f"<|{m['role']}|>{m['content']}" for m in messages) + "<|assistant|>"


def test_templates():
    assert Renderer("r1")("Do X").endswith("User: Do X\nAssistant: <think>")
    assert Renderer("chat", FakeTokenizer())("Do X") == f"<|system|>{SYSTEM}<|user|>Do X<|assistant|>"
    with pytest.raises(ValueError, match="needs a tokenizer"):
        Renderer("chat")("Do X")
    opened = Renderer("chat", FakeTokenizer(), open_think=True)
    assert opened("Do X") == f"<|system|>{SYSTEM}<|user|>Do X<|assistant|><think>\n" and opened.think_opened
    assert Renderer("r1").think_opened and not Renderer("chat", FakeTokenizer()).think_opened
    assert Renderer("chat", FakeTokenizer(), open_think=True).plain("Q") == "<|user|>Q<|assistant|>"  # eval: as is


def test_format_example_is_an_earlier_turn_in_the_exact_format_the_reward_reads(executor):
    """Each task type's worked exchange comes before the solver prompt (chat: a user and an assistant turn; r1: the
    same in raw text), only with format_example on, and its reply parses as a well-formed answer."""
    from minazr.selfplay.buffer import Buffers
    from minazr.selfplay.prompts import FORMAT_EXAMPLES
    from minazr.selfplay.step import seed_buffers

    tasks = {n: make_task(n, think_opened=True) for n in TASKS}
    assert set(FORMAT_EXAMPLES) == set(TASKS)
    for name, (instruction, reply) in FORMAT_EXAMPLES.items():
        assert tasks[name].answer_body(reply.removeprefix("<think>"))  # the strict format, prompt-opened <think>
    buffers = Buffers.empty(tasks, cap=10)
    seed_buffers(buffers, tasks, executor)
    entry = buffers["deduction"].entries()[0]
    task = tasks["deduction"]
    shown, reply = FORMAT_EXAMPLES["deduction"]
    on = Renderer("chat", FakeTokenizer(), open_think=True, format_example=True).solve(task, entry)
    assert on == (f"<|system|>{SYSTEM}<|user|>{shown}<|assistant|>{reply}<|user|>{task.solve_prompt(entry)}"
                  "<|assistant|><think>\n")
    off = Renderer("chat", FakeTokenizer(), open_think=True).solve(task, entry)
    assert off == f"<|system|>{SYSTEM}<|user|>{task.solve_prompt(entry)}<|assistant|><think>\n"
    raw = Renderer("r1", format_example=True).solve(task, entry)
    assert raw.count("Assistant: <think>") == 2 and raw.index(reply.removeprefix("<think>")) < raw.index(
        task.solve_prompt(entry)) and raw.endswith("Assistant: <think>")


def test_proposer_prompts_show_references(executor):
    from minazr.selfplay.buffer import Buffers
    from minazr.selfplay.step import seed_buffers
    import random

    tasks = {n: make_task(n, k_references=3) for n in TASKS}
    buffers = Buffers.empty(tasks, cap=10)
    seed_buffers(buffers, tasks, executor)
    rng = random.Random(0)
    ded = tasks["deduction"]
    prompt = ded.propose_prompt(ded.propose_context(buffers, rng))
    assert "def f(a):\n    return a\n\nf('Hello World')  # returns 'Hello World'" in prompt
    assert "predict the output" in prompt
    ind = tasks["induction"]
    assert "write 6 inputs" in ind.propose_prompt(ind.propose_context(buffers, rng))
    m = tasks["math"]
    assert "Answer: 7" in m.propose_prompt(m.propose_context(buffers, rng))
    entry = buffers["abduction"].entries()[0]
    assert "```output\n'Hello World'\n```" in tasks["abduction"].solve_prompt(entry)


def test_program_proposals_take_an_input_block_or_else_a_demo_call():
    from minazr.selfplay.parsing import ParseError

    ded = make_task("deduction")
    program = "def f(xs, k):\n    return sorted(xs)[k]"
    with_block = f"```python\n{program}\n```\n```input\n[3, 1, 2], 0\n```"
    assert ded.parse_proposal(with_block, {})["inputs"] == "[3, 1, 2], 0"
    demo = f"<think>ok</think>\n```python\n{program}\n\nassert f([5, 4], 1) == 5\n```"
    assert ded.parse_proposal(demo, {}) == {"program": program, "inputs": "[5, 4], 1"}
    with_block_and_demo = f"```python\n{program}\nprint(f([9], 0))\n```\n```input\n[1], 0\n```"
    assert ded.parse_proposal(with_block_and_demo, {})["inputs"] == "[1], 0"  # the block wins
    with pytest.raises(ParseError, match="no input block"):
        ded.parse_proposal(f"```python\n{program}\n```\nTry it with a list.", {})


@pytest.mark.parametrize("text, want", [
    ("<think>x</think>\n```python\ndef f(xs):\n    return sorted(xs)[::2]\n\nf([5, 1, 4])\n```", "[5, 1, 4]"),
    ("```python\ndef f(xs):\n    return sum(xs)\n\nnums = [1, 2, 7]\nprint(f(nums))  # returns 10\n```", "[1, 2, 7]"),
    ("```python\ndef f(s):\n    return s.upper()\n```\nThe input is f('abc').", "'abc'"),
    ("```python\ndef f(s):\n    return s.upper()\n```\n```input\n'q'\n```\nf('abc')", "'q'"),  # the block wins
])
def test_program_proposals_take_the_input_from_a_call(text, want):
    assert make_task("deduction").parse_proposal(text, {})["inputs"] == want


@pytest.mark.parametrize("text", [
    "```python\ndef f(...):\n    ...\n\nf(...)\n```",  # the template, copied
    "```python\ndef f(s):\n    return s.upper()\n\nf(...)\n```",  # the template's call
    "```python\ndef f(s):\n    return s.upper()\n\nf(ARGUMENTS)\n```",
    "```python\ndef f(s):\n    return s.upper()\n```",  # no input at all
])
def test_program_proposals_without_a_real_input_are_rejected(text):
    with pytest.raises(ParseError):
        make_task("deduction").parse_proposal(text, {})


def test_math_proposals_take_the_problem_line_and_reject_the_placeholder():
    task = make_task("math")
    code = "```python\ndef f():\n    return 3 * 4\n```"
    assert task.parse_proposal(f"<think>x</think>\nProblem: 3 rows of 4 eggs: how many?\n{code}", {}) == \
        {"problem": "3 rows of 4 eggs: how many?", "program": "def f():\n    return 3 * 4"}
    for bad in (f"Problem: ...\n{code}", code, "Problem: 3 rows of 4 eggs"):
        with pytest.raises(ParseError):
            task.parse_proposal(bad, {})


def test_a_math_problem_that_states_its_answer_is_invalid_and_punctuation_does_not_make_it_new():
    from minazr.sandbox.executor import ExecResult
    from minazr.selfplay.tasks.base import Invalid

    task = make_task("math")
    seven = [ExecResult(ok=True, output="7")]
    for stated in ("Tom has 3 apples and buys 4. The answer is 7.", "Tom has 3 apples and buys 4 (answer: $7)",
                   "Tom has 3 apples and buys 4. Result: 7", "Tom has 3 apples, buys 4, ends with 7 apples.",
                   "Tom has 3 apples and buys 4 more: seven in all?", "Tom has 7 apples and eats 0."):
        with pytest.raises(Invalid, match="states its answer"):
            task.make_entry({"problem": stated, "program": "def f():\n    return 3 + 4"}, seven, step=0)
    fine = task.make_entry({"problem": "Tom has 3 apples and buys 4. The answer is a count.",
                            "program": "def f():\n    return 3 + 4"}, seven, step=0)
    seed = "Tom has 3 apples and buys 4 more. How many apples does he have now?"
    variant = "Tom has 3 apples and buys 4 more, how many apples does he have now"
    assert task.novelty_key({"problem": seed}) == task.novelty_key({"problem": variant})
    assert task.novelty_key({"problem": seed}) != task.novelty_key({"problem": seed.replace("4", "4.5")})
    assert fine.key != task.make_entry({"problem": seed, "program": "def f():\n    return 7"}, seven, step=0).key
