"""Reward farming: for each class of cheap proposal, the cheapest way around its check, driven through the real
validation and reward path (make_task, selfplay_step, the real sandbox), earns no more than an honest invalid
proposal. Scripted policies play the proposer; the judge and the executor are the real ones."""

import random

import pytest
from conftest import ScriptedPolicy

from minazr.driver.config import RewardsConfig, SelfPlayConfig
from minazr.sandbox.executor import Run
from minazr.selfplay.budget import PromptBudget
from minazr.selfplay.buffer import Buffers
from minazr.selfplay.rewards import RewardScheme
from minazr.selfplay.step import Limits, seed_buffers, selfplay_step
from minazr.selfplay.tasks import Entry, make_task, tasks_from_config

AZR = RewardScheme.from_config(RewardsConfig())
INVALID = AZR.propose_invalid
HONEST = "def f(xs):\n    return sorted(x * 2 for x in xs if x % 3)"  # a task worth proposing


def fence(lang, body):
    return f"```{lang}\n{body}\n```"


def proposal(program, inputs):
    return "<think>a new task</think>\n" + fence("python", program) + fence("input", inputs)


def play(executor, text, names=("deduction",), buffers=None, fits=None, limits=None, timeout_s=5.0, scheme=AZR,
         answer="<think>no idea</think><answer>0</answer>", **overrides):
    """One step in which every proposer prompt of the first task gets `text`; the proposals' samples."""
    cfg = SelfPlayConfig(tasks=list(names), **{"propose_per_task": 1, "n_mc": 2, "solve_per_task": 0,
                                               "k_references": 2, **overrides})
    tasks = tasks_from_config(cfg)
    if buffers is None:
        buffers = Buffers.empty(names, cap=100, retire_seed_after=4)
        seed_buffers(buffers, tasks, executor)

    def script(prompt, n):
        if prompt.startswith("## Task: create") or prompt.startswith("## Task: write"):
            return [text] * n
        return [answer(prompt) if callable(answer) else answer for _ in range(n)]

    res = selfplay_step(ScriptedPolicy(script), buffers, tasks, executor, cfg, scheme, lambda t: t, random.Random(0),
                        step=1, timeout_s=timeout_s, limits=limits, fits=fits)
    return [s for s in res.samples if s.role == "propose" and s.task == names[-1]], buffers, res


def farmed(samples):
    """Each proposal's reward is at most the invalid one's, and none of them entered a buffer as valid."""
    assert samples and all(s.reward <= INVALID for s in samples), [(s.outcome, s.reward) for s in samples]
    assert not any(s.outcome == "valid" for s in samples)


def test_an_honest_task_is_still_valid(executor):
    (p,), _, _ = play(executor, proposal(HONEST, "[4, 5, 6, 7]"))
    assert p.outcome == "valid" and p.reward > INVALID


# ---------------------------------------------------------------- 1. a task too long for the context


def test_a_short_program_with_a_huge_output_is_invalid_and_never_enters_the_buffer(executor):
    tasks = {"deduction": make_task("deduction")}
    budget = PromptBudget(max_model_len=2048, propose_tokens=256, solve_tokens=256, k_references=2,
                          render=lambda t: t, tasks=tasks)
    samples, buffers, _ = play(executor, proposal("def f(n):\n    return list(range(n * 2))", "600"),
                               fits=budget.reason)
    farmed(samples)
    assert samples[0].outcome.startswith("invalid: too long: ")
    assert len(buffers["deduction"]) == 1  # the seed only
    (p,), _, _ = play(executor, proposal("def f(n):\n    return list(range(n * 2))", "15"), fits=budget.reason)
    assert p.outcome == "valid"  # the same program on a small input fits


def test_a_buffer_loaded_under_a_smaller_context_drops_what_no_longer_fits(tmp_path):
    tasks = {"deduction": make_task("deduction"), "induction": make_task("induction")}
    buffers = Buffers.empty(tasks, cap=10)
    short = {"program": "def f(x):\n    return x * 2 + 1", "inputs": "3", "output": "7"}
    long = {"program": "def f(n):\n    return list(range(n * 2))", "inputs": "900",
            "output": repr(list(range(1800)))}
    buffers["deduction"].add(Entry("deduction", short, "a"))
    buffers["deduction"].add(Entry("deduction", long, "b"))
    buffers.save(tmp_path)
    loaded = Buffers.empty(tasks, cap=10)
    loaded.load(tmp_path)
    budget = PromptBudget(2048, 256, 256, 2, lambda t: t, tasks)
    assert budget.drop_misfits(loaded) == {"deduction": 1}
    assert [e.key for e in loaded["deduction"].entries()] == ["a"]
    assert PromptBudget(100_000, 256, 256, 2, lambda t: t, tasks).drop_misfits(buffers) == {}


def test_a_reference_that_fits_alone_but_not_k_times_is_too_long():
    tasks = {"deduction": make_task("deduction")}
    data = {"program": "def f(s):\n    return s * 2 + 'x'", "inputs": repr("ab" * 100), "output": repr("ab" * 200 + "x")}
    one = PromptBudget(4096, 256, 256, 1, lambda t: t, tasks)
    six = PromptBudget(4096, 256, 256, 6, lambda t: t, tasks)
    assert one.reason(tasks["deduction"], Entry("deduction", data, "k")) is None
    assert six.reason(tasks["deduction"], Entry("deduction", data, "k")).startswith("too long: 6 references")


# ---------------------------------------------------------------- 2. copies and near-copies


REF = "def f(x):\n    return x * 3 + 1"


def with_reference(program=REF, inputs="2", output="7", task="deduction"):
    buffers = Buffers.empty([task], cap=100, retire_seed_after=4)
    buffers[task].add(Entry(task, {"program": program, "inputs": inputs, "output": output}, "ref", step=0))
    return buffers


@pytest.mark.parametrize("copy", [
    REF,  # verbatim
    "def f(v):\n    return 1 + v * 3",  # reordered
    "def f(x):\n    if x == 7:\n        return -1\n    return x * 3 + 1",  # one probe value special-cased
    "def f(x):\n    if x in (0, 3):\n        return 5\n    return x * 3 + 1",  # two of them
])
def test_copies_and_near_copies_sit_at_the_bottom_with_invalid_proposals(executor, copy):
    samples, buffers, _ = play(executor, proposal(copy, "5"), buffers=with_reference())
    farmed(samples)
    assert samples[0].outcome.startswith("duplicate")
    assert len(buffers["deduction"]) == 1


def induction_buffers(inputs, program="def f(x):\n    return x * x - 1"):
    buffers = Buffers.empty(["deduction", "induction"], cap=100)
    buffers["deduction"].add(Entry("deduction", {"program": program, "inputs": "1", "output": "0"}, "d", 0))
    pairs = [[a, str(eval(a) ** 2 - 1)] for a in inputs]
    buffers["induction"].add(Entry("induction", {"program": program, "message": "squares, less one",
                                                 "visible": pairs[:3], "hidden": pairs[3:]}, "i", 0))
    return buffers


def induction_text(inputs, hint="squares, less one"):
    return "".join(fence("input", a) for a in inputs) + fence("message", hint)


@pytest.mark.parametrize("inputs", [
    ["1", "2", "3", "4", "5", "9"],  # one input swapped
    ["1.0", "2", "3", "4", "5", "6"],  # 1 written as 1.0
])
def test_an_induction_task_with_one_input_changed_is_a_near_copy(executor, inputs):
    buffers = induction_buffers(["1", "2", "3", "4", "5", "6"])
    samples, _, _ = play(executor, induction_text(inputs), names=("deduction", "induction"), buffers=buffers)
    (p,) = [s for s in samples if s.task == "induction"]
    assert p.outcome == "duplicate: a near-copy of a known task" and p.reward <= INVALID


# ---------------------------------------------------------------- 3. one-step programs


@pytest.mark.parametrize("program,inputs", [
    ("def f(x):\n    return len(x)", "[3, 1, 4, 1, 5]"),
    ("def f(x):\n    return x[0]", "'hello'"),
    ("def f(x):\n    return x + 1", "41"),
    ("def f(x):\n    return str(x)", "1234"),
    ("def f(x):\n    y = x\n    k = 2\n    return y * k", "21"),  # aliases are no steps
])
def test_one_step_programs_are_trivial(executor, program, inputs):
    samples, _, _ = play(executor, proposal(program, inputs))
    farmed(samples)
    assert "one step" in samples[0].outcome


# ---------------------------------------------------------------- 4. abduction giveaways


@pytest.mark.parametrize("program,inputs,reason", [
    ("def f(x):\n    return [x, x * 2]", "21", "the output gives away an input"),  # the input, in the output
    ("def f(s):\n    return {'in': s, 'n': len(s) * 2}", "'hey'", "the output gives away an input"),  # inside a dict
    ("def f(a, b):\n    return [b, a]", "4, 5", "the output gives away an input"),  # unpack the output
    ("def f(a, b):\n    return len(a) + len(b) > 0", "'abc', 'xy'", "most inputs give the output"),  # any but '', ''
])
def test_abduction_tasks_that_give_their_input_away_are_trivial(executor, program, inputs, reason):
    samples, _, _ = play(executor, proposal(program, inputs), names=("abduction",))
    farmed(samples)
    assert reason in samples[0].outcome


# ---------------------------------------------------------------- 5. induction without induction


def induction_play(executor, text, program="def f(x):\n    return x * x - 1"):
    buffers = Buffers.empty(["deduction", "induction"], cap=100)
    buffers["deduction"].add(Entry("deduction", {"program": program, "inputs": "1", "output": "0"}, "d", 0))
    samples, _, _ = play(executor, text, names=("deduction", "induction"), buffers=buffers)
    return [s for s in samples if s.task == "induction"]


@pytest.mark.parametrize("inputs,program,reason", [
    # hidden inputs that are value-equal twins of the shown ones: fewer than 6 distinct inputs
    (["1", "2", "3", "1.0", "True", "2.0"], None, "fewer than 6 distinct valid inputs"),
    # every hidden input gives one output: a constant passes them
    (["1", "2", "3", "-5", "5", "-5.5"], "def f(x):\n    return 0 if abs(x) >= 5 else x * 2", "every hidden input"),
])
def test_induction_tasks_a_lookup_table_or_a_constant_passes_are_invalid(executor, inputs, program, reason):
    samples = induction_play(executor, induction_text(inputs), **({"program": program} if program else {}))
    farmed(samples)
    assert reason in samples[0].outcome


@pytest.mark.parametrize("hint", [
    "return x * x - 1",  # the program's line
    "f(x) = x*x-1",  # the program as a formula
    "it is `x ** 2 - 1`",  # an expression a solver pastes
])
def test_an_induction_hint_that_states_the_program_is_invalid(executor, hint):
    samples = induction_play(executor, induction_text(["1", "2", "3", "4", "5", "6"], hint))
    farmed(samples)
    assert "program" in samples[0].outcome


def test_an_honest_induction_hint_is_valid(executor):
    (p,) = induction_play(executor, induction_text(["1", "2", "3", "4", "5", "6"], "squares, less one"))
    assert p.outcome == "valid"


# ---------------------------------------------------------------- 6. math


@pytest.mark.parametrize("text,reason", [
    ("Problem: I think of a number from 1 to 4. Which is it?\n" + fence("python", "def f():\n    return 3"),
     "uses none of the problem's numbers"),
    ("Problem: Pick a number between 1 and 4.\n" + fence("python", "def f():\n    lo = 1\n    return 3"),
     "does not depend on the problem's numbers"),
    ("Problem: Sam has 3 pears and gets 4 more: seven pears. How many?\n" + fence("python", "def f():\n    return 3 + 4"),
     "states its answer"),
    ("Problem: Sam has 3 pears and gets 4 more. Result: 7. How many?\n" + fence("python", "def f():\n    return 3 + 4"),
     "states its answer"),
    ("Problem: Sam has 3 pears, gets 4 more and ends with 7 pears. How many?\n"
     + fence("python", "def f():\n    return 3 + 4"), "states its answer"),
])
def test_math_guesses_and_answers_stated_in_other_words_are_invalid(executor, text, reason):
    samples, _, _ = play(executor, text, names=("math",))
    farmed(samples)
    assert reason in samples[0].outcome


def test_an_honest_math_problem_is_valid(executor):
    text = "Problem: Sam has 3 bags of 4 pears and eats 2. How many pears are left?\n" + \
        fence("python", "def f():\n    return 3 * 4 - 2")
    (p,), _, _ = play(executor, text, names=("math",))
    assert p.outcome == "valid"


# ---------------------------------------------------------------- 7. stalls


SPIN = "def f(x):\n    if x != 5:\n        while True:\n            pass\n    return x * 2 + 1"


def test_a_proposal_that_spins_on_every_other_input_is_stopped_by_its_validation_budget(executor):
    limits = Limits(probe_timeout_s=0.5, budget_s=1.0)
    samples, _, res = play(executor, proposal(SPIN, "5"), buffers=with_reference(), limits=limits)
    farmed(samples)
    assert samples[0].outcome == "invalid: validation budget spent (runs past 1 server-s)"


def test_the_budget_stops_a_group_and_lets_the_others_run(executor):
    """Executor.map with budgets: a group that has spent its budget gets no more runs; other groups are untouched,
    and the spender is charged no more than what ran (its runs in flight when the budget ran out included)."""
    spin = [Run(SPIN, str(i), probe=True, timeout_s=0.2, group=0) for i in range(10)]
    honest = [Run(HONEST, f"[{i}, 4, 5]", probe=True, timeout_s=0.2, group=1) for i in range(10)]
    budgets = {0: 0.5, 1: 0.5}
    results = executor.map(spin + honest, 5.0, budgets=budgets)
    assert all(r.ok for r in results[10:]) and budgets[1] > 0
    ran = [r for r in results[:10] if not r.over_budget]
    assert sum(r.over_budget for r in results[:10]) >= 5 and all(r.timed_out for r in ran)
    assert -budgets[0] + 0.5 == pytest.approx(sum(r.cost_s for r in ran))


def test_a_lookup_table_of_the_visible_pairs_is_the_cheapest_induction_solver():
    from minazr.selfplay.tasks.giveaways import lookup_answers, value_key

    assert value_key(1) == value_key(1.0) == value_key(True) and value_key((1, 2)) == value_key([1, 2])
    visible = [["1", "2"], ["2", "4"], ["3", "0"]]
    assert lookup_answers(visible, [["1.0", "2"], ["True", "2.0"]])  # twins of the shown inputs
    assert lookup_answers(visible, [["7", "0"], ["8", "0"]]) is False  # 0 is not the most common output
    assert lookup_answers([["1", "5"], ["2", "5"], ["3", "1"]], [["9", "5"]])  # the fallback constant
    assert lookup_answers(visible, [["4", "8"]]) is False  # an honest hidden pair


# ---------------------------------------------------------------- honest tasks are not rejected more often

import json  # noqa: E402
from pathlib import Path  # noqa: E402

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

BASELINE = json.loads((Path(__file__).parent / "data" / "probe_audit_baseline.json").read_text())
NEW_GIVEAWAYS = {"trivial: the output gives away an input", "trivial: most inputs give the output"}
LOOSE = Limits(probe_timeout_s=2.0, budget_s=60.0)  # the checks alone; the budget's rejections are in the audit


@settings(max_examples=4, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(sorted(BASELINE)), min_size=25, max_size=25, unique=True))
def test_cruxeval_tasks_are_not_rejected_more_often_than_before_these_checks(executor, ids):
    """Random CRUXEval programs (human-written, to need reasoning), through the real validation: a deduction task the
    checks before this change accepted is still accepted; an abduction task newly rejected is one whose answer a
    solver reads off the output, or one that most inputs solve (docs/selfplay.md: the audit's counts)."""
    from minazr.eval.benchmarks import get
    from minazr.eval.probe_audit import verdicts

    by_id = {it.id: it for it in get("cruxeval-o").load()}
    items = [by_id[i] for i in ids]
    for it, verdict in zip(items, verdicts(items, executor, LOOSE)):
        before = BASELINE[it.id]
        if before["deduction"] == "valid":
            assert verdict["deduction"] == "valid", (it.id, verdict)
        if before["abduction"] == "valid" and verdict["abduction"] != "valid":
            assert verdict["abduction"].removeprefix("invalid: ") in NEW_GIVEAWAYS, (it.id, verdict)
