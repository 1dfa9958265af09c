"""The whole self-play step, driven by a scripted policy: exact rewards and advantages for every sample."""

import math
import random
from dataclasses import replace

import pytest
from conftest import ScriptedPolicy

from minazr.selfplay.buffer import Buffers
from minazr.driver.config import RewardsConfig, SelfPlayConfig
from minazr.selfplay.prompts import Renderer
from minazr.selfplay.rewards import RewardScheme
from minazr.selfplay.step import fill_buffers, seed_buffers, selfplay_step
from minazr.selfplay.tasks import Entry, tasks_from_config

AZR = RewardScheme.from_config(RewardsConfig())
RENDER = Renderer("r1")


def fence(lang, body):
    return f"```{lang}\n{body}\n```"


LEGACY = dict(answer_format="answer", train_on_mc=False, fresh_solves=False)  # the mechanics tests below predate
#   these options; the tests of skill (test_skill.py) run with the defaults


def setup(task_names, **overrides):
    cfg = SelfPlayConfig(tasks=list(task_names), **{**LEGACY, **overrides})
    tasks = tasks_from_config(replace(cfg, tasks=list(task_names)))
    return cfg, tasks, Buffers.empty(task_names, cap=100)


def step(policy, buffers, tasks, executor, cfg, scheme=AZR, estimator="trr++", timeout_s=5.0):
    return selfplay_step(policy, buffers, tasks, executor, cfg, scheme, RENDER, random.Random(0), step=1,
                         estimator=estimator, timeout_s=timeout_s)


def test_deduction_step_exact_rewards_and_advantages(executor):
    cfg, tasks, buffers = setup(["deduction"], propose_per_task=3, n_propose=1, n_mc=4, solve_per_task=1,
                                n_solve=2, k_references=1)
    seed_buffers(buffers, tasks, executor)
    proposals = iter([
        "<think>multiply</think><answer>" + fence("python", "def f(x):\n    return x * 3 + 1") + fence("input", "4")
        + "</answer>",
        fence("python", "import os\ndef f(x):\n    return os.getcwd()") + fence("input", "1"),  # hostile
        "I do not know how to write programs.",  # no code at all
    ])

    def script(prompt, n):
        if "create a new Python program" in prompt:
            return [next(proposals)]
        if "return x * 3" in prompt and n == 4:  # Monte-Carlo solves of the new task: 2 of 4 right
            return ["<answer>13</answer>", "<answer>14</answer>", "<answer>13.0</answer>", "no tags"]
        gold = "13" if "return x * 3" in prompt else "'Hello World'"
        return [f"<answer>{gold}</answer>", "<answer>'nope'</answer>"]

    policy = ScriptedPolicy(script, version=7)
    res = step(policy, buffers, tasks, executor, cfg)
    # a plain Policy (no streaming) gets one call per round: proposals with the buffer's solver prompts (they do
    # not depend on this step's proposals), then the Monte-Carlo solves of the valid proposal
    assert len(policy.calls) == 2
    assert [r.n for r in policy.calls[0]] == [1, 1, 1, 2] and [r.n for r in policy.calls[1]] == [4]

    props = [s for s in res.samples if s.role == "propose"]
    sols = [s for s in res.samples if s.role == "solve"]
    assert [s.reward for s in props] == [0.5, -1.0, -1.0]
    assert props[0].outcome == "valid" and props[0].extra["solve_rate"] == 0.5
    assert props[1].outcome == "invalid: import of module"
    assert props[2].outcome == "invalid: no python code block"
    assert [s.reward for s in sols] == [1.0, -0.5]
    s = math.sqrt(0.5)
    assert [p.advantage for p in props] == pytest.approx([1 / s, -0.5 / s, -0.5 / s], abs=1e-5)
    assert [p.advantage for p in sols] == pytest.approx([1.0, -1.0], abs=1e-5)
    assert all(x.version == 7 and len(x.logprobs) == len(x.completion_token_ids) for x in res.samples)
    total = sum(len(x.completion_token_ids) for x in res.samples)
    assert all(x.token_weight == pytest.approx(1 / total) for x in res.samples)

    assert len(buffers["deduction"]) == 2
    new = [e for e in buffers["deduction"].entries() if e.step == 1][0]
    assert new.data == {"program": "def f(x):\n    return x * 3 + 1", "inputs": "4", "output": "13"}
    m = res.metrics
    assert m["propose/valid_rate/deduction"] == pytest.approx(1 / 3)
    assert m["propose/learnable/deduction"] == 1.0 and m["propose/new_programs/deduction"] == 1
    assert m["propose/reject/deduction/import of module"] == 1
    assert m["propose/reject/deduction/no python code block"] == 1
    assert m["solve/accuracy/deduction"] == 0.5 and m["buffer/deduction"] == 2


def test_abduction_answers_any_input_that_maps_to_the_output(executor):
    cfg, tasks, buffers = setup(["abduction"], propose_per_task=1, n_mc=3, solve_per_task=1, n_solve=3)
    program = "def f(a, b):\n    return a * b + 1"

    def script(prompt, n):
        if "create a new Python program" in prompt:
            return [fence("python", program) + fence("input", "3, 1")]
        if "a * b + 1" in prompt:  # output 4: both orders are right, a wrong one, a non-literal
            return ["<answer>1, 3</answer>", "<answer>f(3, 1)</answer>", "<answer>2, 2</answer>"][:n]
        return ["<answer>'Hello World'</answer>", "<answer>exec('x')</answer>", "<answer>'x'</answer>"][:n]

    seed_buffers(buffers, tasks, executor)
    res = step(ScriptedPolicy(script), buffers, tasks, executor, cfg, estimator="grpo")
    props = [s for s in res.samples if s.role == "propose"]
    # the Monte-Carlo solves: both orders are right, 2, 2 is not
    assert props[0].extra["solve_rate"] == pytest.approx(2 / 3) and props[0].reward == pytest.approx(1 / 3)
    sols = [s for s in res.samples if s.role == "solve"]  # the solver prompt: the seed, drawn before the proposal
    assert "a * b + 1" not in sols[0].prompt and [s.reward for s in sols] == [1.0, -1.0, -0.5]
    assert props[0].advantage == 0.0  # GRPO: a proposer prompt with one completion is its own group


def test_induction_solver_must_pass_hidden_pairs(executor):
    cfg, tasks, buffers = setup(["induction"], propose_per_task=1, n_mc=3, solve_per_task=0)
    buffers = Buffers.empty(["deduction", "induction"], cap=100)  # induction draws its program from deduction
    buffers["deduction"].add(Entry("deduction", {"program": "def f(x):\n    return x * 2", "inputs": "1",
                                                 "output": "2"}, "k", step=0))
    blocks = ("1", "'ab'", "[2, 3]", "'ab'", "nonsense(", "-4", "0", "[]")  # 6 distinct valid inputs
    proposal = "".join(fence("input", x) for x in blocks) + fence("message", "Doubles its input.")

    def script(prompt, n):
        if "write 6 inputs" in prompt:
            assert "return x * 2" in prompt
            return [proposal]
        assert "Input: f(1)\nOutput: 2" in prompt and "Doubles its input." in prompt
        return ["<answer>" + fence("python", "def f(x):\n    return x * 2") + "</answer>",
                fence("python", "def f(x):\n    return x * 2 if x != -4 else 0"),  # fails a hidden pair
                "<answer>" + fence("python", "import os\ndef f(x):\n    return x * 2") + "</answer>"]

    res = step(ScriptedPolicy(script), buffers, tasks, executor, cfg)
    (prop,) = res.samples
    assert prop.outcome == "valid" and prop.extra["solve_rate"] == pytest.approx(1 / 3)
    entry = [e for e in buffers["induction"].entries() if e.step == 1][0]
    # duplicates and unparseable inputs dropped
    assert entry.data["visible"] == [["1", "2"], ["'ab'", "'abab'"], ["[2, 3]", "[2, 3, 2, 3]"]]
    assert entry.data["hidden"] == [["-4", "-8"], ["0", "0"], ["[]", "[]"]]


def test_math_gold_comes_from_the_program_not_the_proposer(executor):
    cfg, tasks, buffers = setup(["math"], propose_per_task=2, n_mc=2, solve_per_task=0)

    proposals = iter([
        fence("problem", "A box holds 3 rows of 4 eggs. How many eggs?") + fence("python", "def f():\n    return 3 * 4")
        + "<answer>100</answer>",  # the proposer's claim (100) is ignored
        fence("problem", "Say hi") + fence("python", "def f():\n    return 'hi'"),  # not a number
    ])

    def script(prompt, n):
        if "create a new math word problem" in prompt:
            return [next(proposals)]
        return ["<answer>12 eggs</answer>", "<answer>100</answer>"]

    res = step(ScriptedPolicy(script), buffers, tasks, executor, cfg)
    assert [s.outcome for s in res.samples] == ["valid", "invalid: answer is not a number"]
    assert res.samples[0].extra["solve_rate"] == 0.5 and res.samples[0].reward == 0.5
    assert buffers["math"].entries()[0].data["answer"] == "12"


def test_all_invalid_batch_is_a_normal_step(executor):
    cfg, tasks, buffers = setup(["deduction", "abduction", "induction", "math"], propose_per_task=2,
                                solve_per_task=1, n_solve=2)
    seed_buffers(buffers, tasks, executor)
    res = step(ScriptedPolicy(lambda prompt, n: ["gibberish"] * n), buffers, tasks, executor, cfg)
    props = [s for s in res.samples if s.role == "propose"]
    sols = [s for s in res.samples if s.role == "solve"]
    assert len(props) == 8 and all(s.reward == -1.0 and s.advantage == 0.0 for s in props)
    # one solver prompt for each task but induction, whose buffer starts empty (no trivial identity seed)
    assert len(sols) == 6 and all(s.reward == -1.0 and s.outcome.startswith("unparseable") for s in sols)
    assert all(res.metrics[f"propose/valid_rate/{t}"] == 0.0 for t in tasks)
    assert all(res.metrics[f"solve/accuracy/{t}"] == 0.0 for t in tasks if t != "induction")
    assert not any(math.isnan(v) for v in res.metrics.values())


def test_hostile_proposals_are_contained_and_rejected(executor):
    cfg, tasks, buffers = setup(["deduction"], propose_per_task=5, solve_per_task=0)
    hostile = iter([
        "import subprocess\ndef f(x):\n    return subprocess.run(['id'])",
        "def f(x):\n    while True:\n        pass",
        "def f(x):\n    return ().__class__.__base__.__subclasses__()",
        "def f(x):\n    return open('/etc/passwd').read()",
        "def f(x):\n    return ''.join(set('abcdefghijklmnop'))",
    ])
    res = step(ScriptedPolicy(lambda p, n: [fence("python", next(hostile)) + fence("input", "1")]),
               buffers, tasks, executor, cfg, timeout_s=1.0)
    reasons = [s.outcome for s in res.samples]
    assert reasons == ["invalid: import of module", "invalid: timeout after 1s", "invalid: access to dunder attribute",
                       "invalid: use of banned name", "invalid: non-deterministic"]
    assert len(buffers["deduction"]) == 0


def test_fill_buffers_seeds_to_target(executor):
    cfg, tasks, buffers = setup(["deduction"], propose_per_task=2)
    seed_buffers(buffers, tasks, executor)
    counter = iter(range(1000))
    policy = ScriptedPolicy(lambda p, n: [fence("python", f"def f(x):\n    return x * 2 + {next(counter)}")
                                          + fence("input", "1")])
    rounds = fill_buffers(policy, buffers, tasks, executor, cfg, RENDER, random.Random(0), target=5, max_rounds=10)
    # the target counts the model's own entries (the seed is one more); `x * 2 + 0` is one step: trivial
    assert len(buffers["deduction"]) == 6 and rounds == 3


def test_sandbox_failures_are_dropped_not_penalised(executor):
    """A result that is the sandbox's fault (a crashed server) must not become a -1 for the model."""
    from minazr.sandbox.executor import INFRA_PREFIX, ExecResult

    class FlakyExecutor:
        def map(self, jobs, timeout_s, budgets=None):
            return [ExecResult(False, error=f"{INFRA_PREFIX} sandbox server exited (code -9)", infra=True)
                    for _ in jobs]

    cfg, tasks, buffers = setup(["deduction"], propose_per_task=2, solve_per_task=0)
    seed_buffers(buffers, tasks, executor)
    policy = ScriptedPolicy(lambda p, n: [fence("python", "def f(x):\n    return x") + fence("input", "1")])
    res = selfplay_step(policy, buffers, tasks, FlakyExecutor(), cfg, AZR, RENDER, random.Random(0), step=1)
    assert res.samples == [] and res.metrics["sandbox_failures"] == 2
    assert len(buffers["deduction"]) == 1  # nothing added on the sandbox's word
