"""Self-play rewards skill, not its cheapest imitations. Scripted policies play the cheap strategies a model finds
first (copy a reference, propose a trivial task, answer without reasoning) and each must get the penalty, not the
reward; the defaults (think format, fresh solves, training on Monte-Carlo solves, seed retirement) are on.
Real sandbox; no model."""

import random

import pytest
from conftest import ScriptedPolicy

from minazr.selfplay.buffer import Buffers, TaskBuffer
from minazr.driver.config import RewardsConfig, SelfPlayConfig
from minazr.selfplay.prompts import Renderer
from minazr.selfplay.rewards import RewardScheme
from minazr.selfplay.step import seed_buffers, selfplay_step
from minazr.selfplay.tasks import Entry, make_task, tasks_from_config
from minazr.selfplay.tasks.code_tasks import IDENTITY

AZR = RewardScheme.from_config(RewardsConfig())
TRIPLE = "def f(x):\n    return x * 3"
TWICE_ON = "def f(x):\n    return x * 3 + 1"  # a reference worth copying: two steps


def fence(lang, body):
    return f"```{lang}\n{body}\n```"


def proposal(program, inputs="4"):
    return "<think>new task</think>\n" + fence("python", program) + fence("input", inputs)


def play(executor, script, names=("deduction",), buffers=None, scheme=AZR, template="chat", **cfg_overrides):
    cfg = SelfPlayConfig(tasks=list(names), prompt_template=template, **{
        "propose_per_task": 1, "n_mc": 2, "solve_per_task": 0, "n_solve": 2, "k_references": 2, **cfg_overrides})
    tasks = tasks_from_config(cfg)
    if buffers is None:
        buffers = Buffers.empty(names, cap=100, retire_seed_after=4)
        seed_buffers(buffers, tasks, executor)
    render = Renderer("r1") if template == "r1" else (lambda text: text)
    res = selfplay_step(ScriptedPolicy(script), buffers, tasks, executor, cfg, scheme, render, random.Random(0),
                        step=1)
    return res, buffers


def with_entry(program, inputs, output, task="deduction", names=("deduction",)):
    buffers = Buffers.empty(names, cap=100, retire_seed_after=4)
    buffers[task].add(Entry(task, {"program": program, "inputs": inputs, "output": output}, "ref", step=0))
    return buffers


def roles(res, role):
    return [s for s in res.samples if s.role == role]


# ---------------------------------------------------------------- copies


@pytest.mark.parametrize("copy", [
    TWICE_ON,  # the reference shown in the prompt, verbatim
    "def f(value):\n    '''Triple it, add one.'''\n    return value * 3 + 1",  # renamed, with a docstring
])
def test_a_copying_proposer_gets_the_duplicate_penalty_not_learnability(executor, copy):
    buffers = with_entry(TWICE_ON, "2", "7")
    mc_prompts = []

    def script(prompt, n):
        if "create a new Python program" in prompt:
            assert TWICE_ON in prompt  # the reference it copies
            return [proposal(copy, "5")] * n  # another input does not make it another program
        mc_prompts.append(prompt)
        return ["<think>5 * 3</think><answer>15</answer>"] * n

    res, buffers = play(executor, script, buffers=buffers)
    (p,) = roles(res, "propose")
    assert p.outcome.startswith("duplicate") and p.reward == AZR.propose_invalid == -1.0  # the ladder's bottom
    assert p.extra["solve_rate"] is None
    assert mc_prompts == [] and len(buffers["deduction"]) == 1  # no Monte-Carlo solves, kept out of the buffer
    assert res.metrics["propose/copy_rate/deduction"] == 1.0 and res.metrics["propose/new_programs/deduction"] == 0


@pytest.mark.parametrize("edited", [
    "def f(x):\n    return x * 3 + 1 + 0",
    "def f(x):\n    y = 1\n    return 3 * x + y",
    "def f(x):\n    pass\n    return x * 3 + 1",
    "def f(x):\n    def g(v):\n        return v + v + v + 1\n    return g(x)",
    "def f(x, unused=0):\n    return x * 3 + 1",
    # near-copies: the reference with one or two probe inputs special-cased
    "def f(x):\n    if x == 3:\n        return 0\n    return x * 3 + 1",
    "def f(x):\n    if x in (0, -2):\n        return 99\n    return x * 3 + 1",
])
def test_a_lightly_edited_copy_behaves_like_its_reference(executor, edited):
    """Renaming is caught by the text; everything else a proposer can do to a reference without changing what it
    computes is caught by running both on the reference's input and its probe inputs."""
    res, buffers = play(executor, lambda p, n: [proposal(edited, "5")] * n if "create" in p else ["x"] * n,
                        buffers=with_entry(TWICE_ON, "2", "7"))
    (p,) = roles(res, "propose")
    assert p.outcome == "duplicate: behaves like a reference" and p.reward == AZR.propose_invalid
    assert len(buffers["deduction"]) == 1


def test_a_program_that_only_shares_the_references_output_on_its_input_is_new(executor):
    res, _ = play(executor, lambda p, n: [proposal("def f(x):\n    return x * 2 + 3", "5")] * n if "create" in p
                  else ["x"] * n, buffers=with_entry(TWICE_ON, "2", "7"))  # 2 * 2 + 3 == 2 * 3 + 1 only
    assert roles(res, "propose")[0].outcome == "valid"


@pytest.mark.parametrize("text", [
    # what experiment 2's proposer wrote: the reference with its `Answer:` line, punctuation changed
    "Problem: Tom has 3 apples and buys 4 more, how many apples does he have now?\nAnswer: 7\n"
    "```python\ndef f():\n    apples = 3 + 4\n    return apples\n```",
    "Problem: Tom has 3 apples and buys 4 more. How many apples does he have now? The answer is 7.\n"
    "```python\ndef f():\n    return 7\n```",
])
def test_a_math_copy_with_its_answer_line_is_no_new_task(executor, text):
    res, buffers = play(executor, lambda p, n: [text] * n if "create a new math" in p else ["<answer>7</answer>"] * n,
                        names=("math",))
    (p,) = roles(res, "propose")
    assert (p.outcome.startswith("duplicate") and p.reward == AZR.propose_duplicate
            or "states its answer" in p.outcome and p.reward == AZR.propose_invalid), p.outcome
    assert len(buffers["math"]) == 1  # the seed alone: the solver never sees a problem that tells the answer


def test_copies_of_any_buffer_and_of_each_other_are_duplicates(executor):
    """An abduction entry proposed as a deduction task is a copy; of two equal new proposals one is new."""
    names = ("deduction", "abduction")
    buffers = with_entry("def f(s):\n    return s[::-1] + s", "'ab'", "'baab'", task="abduction", names=names)
    fresh = "def f(n):\n    return [i * i for i in range(n)]"
    texts = iter([proposal("def f(t):\n    return t[::-1] + t", "'xy'"), proposal(fresh, "3"),  # deduction
                  proposal(fresh, "5"), proposal("def f(n):\n    return n * 2 - 100", "3")])  # abduction

    def script(prompt, n):
        if "create a new Python program" in prompt:
            return [next(texts)]
        return ["<think>hmm</think><answer>[0, 1, 4]</answer>"] * n

    res, buffers = play(executor, script, names=names, buffers=buffers, propose_per_task=2, n_propose=1)
    assert [s.outcome.split(":")[0] for s in roles(res, "propose")] == ["duplicate", "valid", "duplicate", "valid"]


def test_the_duplicate_penalty_is_configurable(executor):
    scheme = RewardScheme.from_config(RewardsConfig(propose_duplicate=-0.9))
    res, _ = play(executor, lambda p, n: [proposal(TWICE_ON)] * n if "create" in p else ["x"] * n,
                  buffers=with_entry(TWICE_ON, "2", "7"), scheme=scheme)
    assert roles(res, "propose")[0].reward == -0.9


# ---------------------------------------------------------------- trivial tasks


@pytest.mark.parametrize("program,inputs,reason", [
    ("def f(a):\n    return None", "4", "invalid: trivial: returns None"),
    ("def f(a):\n    x = a\n    return x", "[5, 9]", "invalid: trivial: returns its input"),
    ("def f(a, b):\n    return (a, b)", "1, 'z'", "invalid: trivial: returns its input"),
    ("def f(a):\n    return 42", "[5, 6]", "invalid: trivial: output does not depend on the input"),
    ("def f(s):\n    return len('constant')", "'abc'", "invalid: trivial: output does not depend on the input"),
    ("def f(a, b):\n    return sorted(a) + [b]", "[3, 1, 2], 'abc'", "invalid: input is the template's placeholder"),
    ("def f(a):\n    return len(a)", "The argument list of one call to f, as Python literals",
     "invalid: input is the template's placeholder"),  # copied by the 0.5B model in its first steps
    # one elementary step on the input: nothing to deduce
    ("def f(a):\n    return len(a)", "[5, 9, 1]", "invalid: trivial: one step (len() of the input)"),
    ("def f(s):\n    return str(s)", "12", "invalid: trivial: one step (str() of the input)"),
    ("def f(x):\n    return x + 1", "41", "invalid: trivial: one step (one arithmetic operation)"),
    ("def f(xs):\n    return xs[0]", "[7, 8, 9]", "invalid: trivial: one step (a fixed index or slice of the input)"),
    ("def f(a, b):\n    return max(a, b)", "5, 3", "invalid: trivial: one step (max() of the input)"),
    ("def f(x):\n    return -x", "4", "invalid: trivial: one step (one unary operation)"),
])
def test_a_trivial_proposer_is_rejected_with_its_reason(executor, program, inputs, reason):
    res, buffers = play(executor, lambda p, n: [proposal(program, inputs)] * n if "create" in p else ["x"] * n)
    (p,) = roles(res, "propose")
    assert p.outcome == reason and p.reward == -1.0
    assert len(buffers["deduction"]) == 1  # the seed only
    assert res.metrics["propose/trivial_rate/deduction"] == 1.0
    assert res.metrics[f"propose/reject/deduction/{reason.removeprefix('invalid: ')}"] == 1


@pytest.mark.parametrize("program,inputs,reason", [
    ("def f(a):\n    return 5", "a=3", "invalid: keyword arguments in the input"),
    ("def f(a):\n    assert a == [9, 8, 7]\n    return 42", "[9, 8, 7]", "invalid: trivial: runs on no other input"),
    ("def f(a):\n    return 5", "None", "invalid: trivial: runs on no other input"),  # nothing to vary
    ("def f(a, b):\n    return b", "1, [2]", "invalid: trivial: returns one of its arguments"),
])
def test_cheap_ways_around_the_probes_are_closed(executor, program, inputs, reason):
    res, _ = play(executor, lambda p, n: [proposal(program, inputs)] * n if "create" in p else ["x"] * n)
    assert roles(res, "propose")[0].outcome == reason


@pytest.mark.parametrize("program,inputs", [("def f(a):\n    return list(a) + []", "(1, 2, 3)"),
                                            ("def f(s):\n    return s.strip()", "'  ab '")])
def test_an_abduction_task_whose_output_answers_itself_is_trivial(executor, program, inputs):
    res, _ = play(executor, lambda p, n: [proposal(program, inputs)] * n if "create" in p else ["x"] * n,
                  names=("abduction",))
    assert roles(res, "propose")[0].outcome == "invalid: trivial: f(output) == output, the output answers itself"


@pytest.mark.parametrize("program,inputs", [
    ("def f(s):\n    return len(s) > 0", "'abc'"),  # True on the input, False once the probe empties it
    ("def f(xs):\n    return xs[0] * 2", "[7, 7, 7]"),  # an error on the empty probe is no evidence of triviality
    ("def f(s):\n    return s[0].upper()", "'abc'"),
    ("def f(xs):\n    return xs == sorted(xs)", "[1, 2, 3]"),  # True on the nudged and the empty probe too
    ("def f(a, b):\n    return max(a, b) - min(a, b)", "5, 3"),
    ("def f(s):\n    return s.upper()", "'abc'"),  # one method call: CRUXEval's human tasks are full of them
    ("def f(s):\n    return not any(c.isupper() for c in s)", "'lunabotics'"),  # a false positive of fewer probes
])
def test_simple_programs_that_read_their_input_are_not_trivial(executor, program, inputs):
    res, _ = play(executor, lambda p, n: [proposal(program, inputs)] * n if "create" in p
                  else ["<think>x</think><answer>1</answer>"] * n)
    assert roles(res, "propose")[0].outcome.startswith("valid")


def test_induction_rejects_constant_programs_and_wants_every_input_valid(executor):
    names = ("deduction", "induction")

    def run(program, blocks, text=None):
        buffers = Buffers.empty(names, cap=100)
        buffers["deduction"].add(Entry("deduction", {"program": program, "inputs": "1", "output": "x"}, "k", 0))
        text = text or "".join(fence("input", b) for b in blocks) + fence("message", "a rule on numbers")
        res, _ = play(executor, lambda p, n: [text] * n if "write 6 inputs" in p else
                      [proposal("def f(q):\n    return q * 7", "2")] * n if "create" in p else ["x"] * n,
                      names=names, buffers=buffers)
        return [s.outcome for s in roles(res, "propose") if s.task == "induction"][0]

    six = ["1", "2", "3", "4", "5", "6"]
    assert run("def f(x):\n    return 1", six) == "invalid: trivial: the same output for every input"
    assert run("def f(x):\n    return 10 // x", six[:5] + ["0"]).startswith("invalid: an input failed")
    assert run("def f(x):\n    return x * 2", six[:5]) == "invalid: fewer than 6 distinct valid inputs"
    assert run("def f(x):\n    return x * 2", six) == "valid"
    calls = fence("python", "\n".join(f"f({x})" for x in six))  # the prompt's form: calls, then a Hint: line
    assert run("def f(x):\n    return x * 2", six, calls + "\nHint: a rule on numbers") == "valid"
    assert run("def f(x):\n    return x * 2", six, calls + "\nHint: ...") == "invalid: hint is the template's placeholder"
    assert run("def f(x):\n    return x * 2", six, calls) == \
        "invalid: no hint (a line starting with Hint:, or a message block)"
    assert run("def f(x):\n    return x * 2", six, fence("python", "f(...)\nf(...)") + "\nHint: doubles") == \
        "invalid: no valid input"  # the template's call, copied


def test_induction_writes_inputs_for_deduction_and_abduction_programs_only():
    task = make_task("induction")
    buffers = Buffers.empty(["deduction", "abduction", "induction"], cap=10, retire_seed_after=1)
    buffers["induction"].add(Entry("induction", {"program": "def f(x):\n    return 'induction'"}, "i", 0))
    rng = random.Random(0)
    assert {task.propose_context(buffers, rng)["program"] for _ in range(20)} == {IDENTITY}  # fallback
    buffers["abduction"].add(Entry("abduction", {"program": IDENTITY}, "seed", 0, seed=True))
    buffers["abduction"].add(Entry("abduction", {"program": TRIPLE}, "a", 1))
    assert {task.propose_context(buffers, rng)["program"] for _ in range(20)} == {TRIPLE}  # seed retired


# ---------------------------------------------------------------- reasoning before the answer


def test_a_solver_that_answers_without_reasoning_gets_the_format_penalty(executor):
    buffers = with_entry(TRIPLE, "2", "6")
    answers = ["<think>2 * 3 is 6</think>\n<answer>6</answer>",  # right, and reasoned
               "<answer>6</answer>",  # right value, no reasoning
               "<think></think><answer>6</answer>",  # empty reasoning
               "<think>2 * 3 is",  # reasoning cut off by max_tokens
               "<think>2 * 3 is 6</think><answer>6</answer> Hope this helps!",  # text after the answer
               "<think>2 * 3 = 7</think><answer>7</answer>"]  # reasoned, wrong

    def script(prompt, n):
        if "create a new Python program" in prompt:
            return ["no proposal"] * n
        assert "OUTPUT" in prompt and "<think>" in prompt and "e.g." not in prompt  # placeholders, no example
        return answers[:n]

    res, _ = play(executor, script, buffers=buffers, solve_per_task=1, n_solve=len(answers))
    sols = roles(res, "solve")
    assert [s.reward for s in sols] == [1.0, -1.0, -1.0, -1.0, -1.0, -0.5]
    assert res.metrics["solve/think_rate/deduction"] == pytest.approx(3 / 6)  # the cut-off one never closed it


def test_the_r1_template_opens_think_in_the_prompt(executor):
    res, _ = play(executor, lambda p, n: ["no"] * n if "create" in p else ["2 * 3 is 6</think><answer>6</answer>"] * n,
                  buffers=with_entry(TRIPLE, "2", "6"), template="r1", solve_per_task=1)
    assert [s.reward for s in roles(res, "solve")] == [1.0, 1.0]


def test_the_answer_format_can_be_relaxed(executor):
    res, _ = play(executor, lambda p, n: ["no"] * n if "create" in p else ["<answer>6</answer>"] * n,
                  buffers=with_entry(TRIPLE, "2", "6"), solve_per_task=1, answer_format="answer")
    assert [s.reward for s in roles(res, "solve")] == [1.0, 1.0]


# ---------------------------------------------------------------- fresh tasks


def _fresh_script(seen):
    def script(prompt, n):
        if "create a new Python program" in prompt:
            return [proposal("def f(n):\n    return n * n + 1", "3")] * n
        seen.append((n, "n * n + 1" in prompt))
        return ["<think>9 + 1</think><answer>10</answer>"] * n
    return script


def test_solver_prompts_come_from_this_steps_new_tasks_first(executor):
    seen = []
    res, _ = play(executor, _fresh_script(seen), buffers=with_entry(TRIPLE, "2", "6"), n_mc=2, solve_per_task=1,
                  n_solve=3, train_on_mc=False)
    assert seen == [(2, True), (3, True)]  # the Monte-Carlo solves, then the solver prompt: the same new task
    assert len(roles(res, "solve")) == 3  # Monte-Carlo solves are not trained on


def test_monte_carlo_solves_are_trained_on_and_solver_prompts_come_from_older_tasks(executor):
    seen = []
    res, _ = play(executor, _fresh_script(seen), buffers=with_entry(TRIPLE, "2", "6"), n_mc=2, solve_per_task=1,
                  n_solve=3, train_on_mc=True)
    assert seen == [(3, False), (2, True)]  # the older task's solver prompt goes out with the proposals
    sols = roles(res, "solve")
    assert len(sols) == 5 and [s.reward for s in sols[:2]] == [1.0, 1.0]  # the on-policy MC solves, scored
    assert roles(res, "propose")[0].reward == 0.0  # always solved: no learnability


# ---------------------------------------------------------------- seeds


def test_the_identity_seed_retires_once_the_model_has_proposed_enough():
    buf = TaskBuffer("deduction", cap=10, retire_seed_after=2)
    buf.add(Entry("deduction", {"program": IDENTITY}, "seed", 0, seed=True))
    buf.add(Entry("deduction", {"program": TRIPLE}, "a", 1))
    rng = random.Random(0)
    assert {e.key for _ in range(20) for e in buf.sample(1, rng)} == {"seed", "a"}
    buf.add(Entry("deduction", {"program": "def f(x):\n    return -x"}, "b", 2))
    assert {e.key for _ in range(20) for e in buf.sample(1, rng)} == {"a", "b"}
    assert "seed" in buf  # still known: proposing the identity again is a copy


# ---------------------------------------------------------------- probes on hostile inputs

from hypothesis import given, settings, strategies as st  # noqa: E402

from minazr.sandbox.code_check import check_inputs  # noqa: E402
from minazr.selfplay.tasks import probes  # noqa: E402

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.text(max_size=12),
                     st.floats(allow_nan=False, allow_infinity=False), st.binary(max_size=6))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                                                         st.dictionaries(st.text(max_size=4), inner, max_size=3)),
                       max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(_values, min_size=1, max_size=3))
def test_probe_inputs_are_literal_inputs_that_differ_from_the_proposal(values):
    inputs = ", ".join(map(repr, values))
    if check_inputs(inputs) is not None:
        return
    for v in probes.variants(inputs):
        assert check_inputs(v) is None and v != inputs
        assert probes._args(v) != values
    assert probes.returns_input(inputs, "None") is (values == [None])


def test_probe_audit_counts_every_cruxeval_item_once():
    from minazr.eval.probe_audit import audit

    report = audit(limit=30)
    assert sum(report["deduction"].values()) == 30 and report["deduction"]["valid"] >= 15
    assert sum(report["abduction"].values()) == 30 and report["abduction"]["valid"] <= report["deduction"]["valid"]
