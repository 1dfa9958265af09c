"""Property-based fuzzing of everything that reads model text: no completion, however hostile, escapes as an
exception, and the parsers fail only with their own ParseError / Invalid (the step's catch-all is a safety net,
not the way parsing works).

The executor here is an in-process stand-in that returns hostile-but-well-typed results (the real sandbox is
attacked in test_judge.py and test_sandbox_attacks.py); this file is about the trusted side's parsing and scoring.
"""

import random

from conftest import ScriptedPolicy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minazr.sandbox import literals
from minazr.selfplay.buffer import Buffers
from minazr.driver.config import RewardsConfig, SelfPlayConfig
from minazr.sandbox.executor import Check, Equal, ExecResult, Run
from minazr.selfplay.parsing import ParseError
from minazr.selfplay.prompts import Renderer
from minazr.selfplay.rewards import RewardScheme
from minazr.selfplay.step import selfplay_step
from minazr.selfplay.tasks import Entry, Invalid, make_task

TASKS = ("deduction", "abduction", "induction", "math")

# Pieces small models (and adversaries) write: numbers past Python's digit limit, deep nesting, odd unicode.
ATOMS = st.sampled_from([
    "1", "-0.0", "1e999", "0x" + "f" * 4000, "9" * 5000, "'a'", "b'\\x00'", "None", "True", "set()", "{1: [2]}",
    "frozenset({1})", "...", "f(1)", "x", "\x00", "\udc80", "€", "\\", "'", '"""', "{", "}", "[" * 300, "(" * 150,
    "-" * 2000 + "1", "not " * 500 + "x", "lambda: 0", "__import__('os')", "1/0", "3/4", "1,234", "$5",
])
NESTED = st.integers(1, 400).map(lambda d: "[" * d + "1" + "]" * d)
FRAGMENT = st.one_of(ATOMS, NESTED, st.text(max_size=40))
CODE = st.one_of(
    st.builds(lambda body: f"def f(x):\n    return {body}", FRAGMENT),
    st.builds(lambda body: f"import math\ndef f():\n    return {body}", FRAGMENT),
    st.builds(lambda a, b: f"def f(x):\n    {a}\n    return {b}", FRAGMENT, FRAGMENT),
    FRAGMENT,
)
LANGS = st.sampled_from(["python", "py", "", "input", "output", "message", "problem", "PYTHON", "math"])
BLOCK = st.builds(lambda lang, body, close: f"```{lang}\n{body}\n" + ("```" if close else ""),
                  LANGS, st.one_of(CODE, FRAGMENT), st.booleans())
TAGGED = st.builds(lambda t, body: f"{t}{body}", st.sampled_from(["<answer>", "</answer>", "<think>", "</think>",
                                                                   "assert f(", "f(", "Output: ", "== "]),
                   st.one_of(FRAGMENT, BLOCK))
COMPLETION = st.lists(st.one_of(BLOCK, TAGGED, FRAGMENT), max_size=6).map("\n".join)
OUTPUT = st.one_of(st.sampled_from(["1", "'abc'", "[1, 2]", "{'a': 1}", "1e999", "0x" + "f" * 4000, "[" * 400,
                                    "", "nan", "None", "2.5", "10**20", "123456789", "True"]), st.text(max_size=30))
RESULT = st.one_of(
    st.builds(lambda out: ExecResult(True, out), OUTPUT),
    st.builds(lambda err: ExecResult(False, error=err), st.text(max_size=30)),
    st.builds(lambda m: ExecResult(True, "1", match=m), st.one_of(st.booleans(), st.none())),
    st.just(ExecResult(False, error="x", match=False, nondeterministic=True)),
    st.just(ExecResult(False, error="sandbox failure: gone", infra=True)),
)

ENTRIES = {
    "deduction": Entry("deduction", {"program": "def f(a):\n    return a", "inputs": "1", "output": "1"}, "k1"),
    "abduction": Entry("abduction", {"program": "def f(a):\n    return a", "inputs": "1", "output": "1"}, "k2"),
    "induction": Entry("induction", {"program": "def f(a):\n    return a", "message": "m",
                                     "visible": [["1", "1"]], "hidden": [["2", "2"]]}, "k3"),
    "math": Entry("math", {"problem": "p", "program": "def f():\n    return 3", "answer": "3"}, "k4"),
}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(text=COMPLETION, task_name=st.sampled_from(TASKS), results=st.lists(RESULT, min_size=1, max_size=6))
def test_proposal_parsing_and_validation_fail_only_with_their_own_errors(text, task_name, results):
    task = make_task(task_name)
    try:
        fields = task.parse_proposal(text, {"program": "def f(a):\n    return a"})
    except ParseError:
        return
    jobs = task.validation_jobs(fields)
    try:
        entry = task.make_entry(fields, (results * len(jobs))[:len(jobs)], step=1)
    except Invalid:
        return
    task.solve_prompt(entry)  # a valid entry always renders


@FUZZ
@given(text=COMPLETION, task_name=st.sampled_from(TASKS), result=RESULT)
def test_answer_parsing_and_judging_fail_only_with_their_own_errors(text, task_name, result):
    task, entry = make_task(task_name), ENTRIES[task_name]
    try:
        answer = task.parse_answer(text, entry)
    except ParseError:
        return
    jobs = task.check_jobs(entry, answer)
    verdict = task.judge(entry, answer, [result] * len(jobs))
    assert isinstance(verdict, bool)
    if task_name == "deduction":
        assert literals.is_literal(answer)  # every accepted answer can be compared by the judge


class HostileExecutor:
    """Returns results drawn by hypothesis: any mix of outputs, errors, verdicts and sandbox failures."""

    def __init__(self, draw):
        self.draw = draw

    def map(self, jobs, timeout_s, budgets=None):
        assert all(isinstance(j, (Run, Check, Equal)) for j in jobs)
        return [self.draw(RESULT) for _ in jobs]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_whole_step_survives_any_completions_and_results(data):
    names = list(TASKS)
    cfg = SelfPlayConfig(tasks=names, propose_per_task=1, n_propose=2, n_mc=2, solve_per_task=1, n_solve=2)
    tasks = {n: make_task(n) for n in names}
    buffers = Buffers.empty(names, cap=50)
    for n in names:
        buffers[n].add(ENTRIES[n])
    policy = ScriptedPolicy(lambda prompt, n: [data.draw(COMPLETION) for _ in range(n)])
    res = selfplay_step(policy, buffers, tasks, HostileExecutor(data.draw), cfg,
                        RewardScheme.from_config(RewardsConfig()), Renderer("r1"), random.Random(0), step=1)
    assert all(-1.0 <= s.reward <= 1.0 and s.outcome for s in res.samples)
    assert all(s.advantage == s.advantage for s in res.samples)  # no NaN
