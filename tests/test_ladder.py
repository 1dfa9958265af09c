"""The ranked proposer rewards ('ladder'), the per-prompt solver baseline with the running proposer baseline
('prompt+running'), the solver curriculum and references shown as calls: each with the cheapest way around it,
driven through the real step (selfplay_step, make_task, the real sandbox) where a reward is involved."""

import random

import pytest
from conftest import ScriptedPolicy
from test_farming import HONEST, proposal, play, with_reference

from minazr.driver.config import RewardsConfig, SelfPlayConfig
from minazr.selfplay.advantages import RunningBaseline, prompt_running, trr_plus_plus
from minazr.selfplay.buffer import Buffers, TaskBuffer, record_group, settled
from minazr.selfplay.rewards import RewardScheme, proposer_reward
from minazr.selfplay.step import selfplay_step, solver_entries
from minazr.selfplay.tasks import Entry, make_task, tasks_from_config
from minazr.selfplay.tasks.base import RESEMBLES, resemblance

LADDER = RewardScheme.from_config(RewardsConfig(preset="ladder"))


# ---------------------------------------------------------------- the ladder


def test_every_rung_of_the_ladder_is_above_the_one_below():
    learnable = [proposer_reward(True, r, LADDER) for r in (0.25, 0.5, 0.75)]
    extreme = [proposer_reward(True, r, LADDER) for r in (0.0, 1.0)]
    failed = proposer_reward(False, None, LADDER, well_formed=True)
    bottom = {proposer_reward(False, None, LADDER), LADDER.propose_duplicate}
    assert min(learnable) > max(extreme) > failed > max(bottom)
    assert learnable == sorted(learnable, reverse=True)  # AZR's 1 - solve rate: harder learnable tasks pay more


def test_the_azr_presets_keep_every_failure_at_minus_one():
    for preset in ("azr", "azr_code"):
        scheme = RewardScheme.from_config(RewardsConfig(preset=preset))
        assert proposer_reward(False, None, scheme, well_formed=True) == proposer_reward(False, None, scheme) == -1


def test_a_well_formed_failure_earns_the_failed_rung_and_unreadable_text_the_bottom(executor):
    (failed,), _, _ = play(executor, proposal("def f(xs):\n    return sorted(xs) + undefined", "[3, 1]"),
                           scheme=LADDER)
    (unreadable,), _, _ = play(executor, "I would write a sorting function.", scheme=LADDER)
    assert failed.outcome.startswith("invalid: NameError") and failed.reward == LADDER.propose_failed == -0.5
    assert unreadable.outcome.startswith("invalid: ") and unreadable.reward == LADDER.propose_invalid == -1


REFERENCE = "def f(xs):\n    out = []\n    for x in xs:\n        if x % 3:\n            out.append(x * 2)\n    return out"


@pytest.mark.parametrize("broken", [
    REFERENCE.replace("return out", "return out + missing"),  # pasted, then broken by an undefined name
    REFERENCE.replace("xs", "items").replace("return out", "return out[10]"),  # renamed, then an IndexError
    REFERENCE.replace("x * 2", "x * 2 / 0"),  # a ZeroDivisionError
])
def test_a_broken_copy_of_a_shown_reference_earns_the_copy_penalty_not_the_failed_rung(executor, broken):
    """The cheapest way around the copy penalty under the ladder: paste the reference and break it, for -0.5."""
    buffers = with_reference(REFERENCE, "[1, 2, 3, 4]", "[2, 4, 8]")
    (p,), _, _ = play(executor, proposal(broken, "[5, 6, 7]"), buffers=buffers, scheme=LADDER)
    assert p.outcome.startswith("duplicate: an edited known task, rejected") and p.reward == -1


def test_an_honest_failure_unlike_the_references_keeps_the_failed_rung(executor):
    buffers = with_reference(REFERENCE, "[1, 2, 3, 4]", "[2, 4, 8]")
    text = proposal("def f(s):\n    words = s.split()\n    return {w: len(w) for w in words}[0]", "'a bb ccc'")
    (p,), _, _ = play(executor, text, buffers=buffers, scheme=LADDER)
    assert p.outcome.startswith("invalid: KeyError") and p.reward == LADDER.propose_failed


def test_resemblance_tells_edited_programs_from_other_programs():
    assert resemblance(REFERENCE, REFERENCE.replace("xs", "values")) == 1.0  # renamed
    assert resemblance(REFERENCE, REFERENCE.replace("x * 2", "x * 5")) >= RESEMBLES
    assert resemblance(REFERENCE, "def f(s):\n    return s[::-1].upper()") < RESEMBLES
    assert resemblance("def f(a):\n    return a", "def f(a):\n    return None") < RESEMBLES  # the header is no match


@pytest.mark.parametrize("copy", [REFERENCE, REFERENCE.replace("out", "acc")])
def test_copies_stay_at_the_bottom_under_the_ladder(executor, copy):
    buffers = with_reference(REFERENCE, "[1, 2, 3, 4]", "[2, 4, 8]")
    (p,), _, _ = play(executor, proposal(copy, "[5, 6, 7]"), buffers=buffers, scheme=LADDER)
    assert p.outcome.startswith("duplicate") and p.reward == LADDER.propose_duplicate == -1


def test_trivial_tasks_earn_no_more_than_an_honest_failure(executor):
    (p,), _, _ = play(executor, proposal("def f(x):\n    return x + 1", "41"), scheme=LADDER)
    assert p.outcome.startswith("invalid: trivial") and p.reward == LADDER.propose_failed


def test_a_task_the_solver_always_solves_earns_less_than_one_it_sometimes_solves(executor):
    """Unlearnable new tasks (Monte-Carlo solve rate 0 or 1) sit below every learnable one."""
    answers = iter(["<think>4, 5 -> 10</think><answer>[8, 10, 14]</answer>", "<think>?</think><answer>0</answer>"] * 4)
    (sometimes,), _, _ = play(executor, proposal(HONEST, "[4, 5, 6, 7]"), scheme=LADDER,
                              answer=lambda prompt: next(answers))
    (always,), _, _ = play(executor, proposal(HONEST, "[4, 5, 6, 7]"), scheme=LADDER,
                           answer="<think>4, 5, 7 -> 8, 10, 14</think><answer>[8, 10, 14]</answer>")
    assert sometimes.outcome == always.outcome == "valid"
    assert sometimes.extra["solve_rate"] == 0.5 and always.extra["solve_rate"] == 1.0
    assert sometimes.reward == 0.5 > always.reward == LADDER.propose_extreme > LADDER.propose_failed


# ---------------------------------------------------------------- advantages


def test_a_prompt_always_solved_earns_nothing_per_prompt_but_is_paid_under_one_baseline_per_task():
    """Experiment 2: under TRR++'s one baseline per task, prompts solved 4/4 took 45% of the positive advantage."""
    rewards = [1, 1, 1, 1, 1, -0.5, -0.5, 1]  # prompt 0 memorised; prompt 1 mixed
    pids = [0, 0, 0, 0, 1, 1, 1, 1]
    keys = [("deduction", "solve")] * 8
    per_task = trr_plus_plus(rewards, pids, keys)
    per_prompt = prompt_running(rewards, pids, keys)
    assert all(a > 0 for a in per_task[:4])
    assert per_prompt[:4] == [0.0] * 4 and per_prompt[4] > 0 > per_prompt[5]


def test_a_flat_proposer_group_still_learns_against_its_running_baseline():
    baseline = RunningBaseline(decay=0.9)
    keys = [("deduction", "propose")] * 3
    first = prompt_running([0.5, -1, -1], [0, 1, 2], keys, baseline)
    assert abs(sum(first)) < 1e-9  # the first step: the batch's own mean
    copies = prompt_running([-1, -1, -1], [3, 4, 5], keys, baseline)  # every proposal a copy: no variance
    assert all(a < 0 for a in copies)  # ... but below what the task's proposals used to earn
    assert baseline.means["deduction/propose"] == pytest.approx(0.9 * (-0.5) + 0.1 * -1)


def test_the_running_baseline_resumes_where_it_stopped():
    a, b = RunningBaseline(0.95), RunningBaseline(0.95)
    keys = [("math", "propose")] * 2
    prompt_running([0.2, -1], [0, 1], keys, a)
    b.load_state_dict(a.state_dict())
    assert prompt_running([0.5, -0.5], [0, 1], keys, a) == prompt_running([0.5, -0.5], [0, 1], keys, b)


def test_group_metrics_count_flat_groups_and_the_advantage_on_memorised_prompts(executor):
    answers = iter(["<think>a</think><answer>[8, 10, 14]</answer>", "<think>b</think><answer>0</answer>"])
    (_,), _, res = play(executor, proposal(HONEST, "[4, 5, 6, 7]"), scheme=LADDER, answer=lambda p: next(answers))
    m = res.metrics
    assert m["groups/flat/deduction/propose"] == 1.0  # one proposal: a group of one
    assert m["groups/flat/deduction/solve"] == 0.0 and m["solve/distinct_prompts/deduction"] == 1
    assert m["propose/new_learnable/deduction"] == 1 and m["propose/new_solved_all/deduction"] == 0
    assert {"length/think_chars_p10/deduction", "length/think_chars_p90/deduction",
            "propose/verbatim_copy_rate/deduction", "adv_mass/solve_always/deduction"} <= set(m)


def test_verbatim_copies_of_the_prompts_own_references_are_counted(executor):
    buffers = with_reference(REFERENCE, "[1, 2, 3, 4]", "[2, 4, 8]")
    (_,), _, res = play(executor, proposal(REFERENCE, "[5, 6, 7]"), buffers=buffers, scheme=LADDER)
    assert res.metrics["propose/verbatim_copy_rate/deduction"] == 1.0


# ---------------------------------------------------------------- the curriculum


def _entry(key, step, **stats):
    return Entry("deduction", {"program": "def f(x):\n    return x", "inputs": "1", "output": "1"}, key, step,
                 stats=stats)


def test_the_curriculum_draws_the_least_drawn_then_the_newest_and_settled_entries_last():
    buf = TaskBuffer("deduction", cap=10)
    for e in [_entry("old", 1), _entry("new", 5), _entry("often", 6, draws=3, last_rate=0.5),
              _entry("mastered", 7, draws=1, last_rate=1.0), _entry("hopeless", 8, draws=2, last_rate=0.0)]:
        buf.add(e)
    rng = random.Random(0)
    assert [e.key for e in buf.draw(5, rng)] == ["new", "old", "often", "mastered", "hopeless"]
    assert [e.key for e in buf.draw(2, rng, exclude={"new"})] == ["old", "often"]


def test_record_group_counts_draws_and_settles_mastered_entries():
    e = _entry("k", 0)
    record_group(e, [True, False, True, True])
    assert e.stats == {"draws": 1, "answers": 4, "correct": 3, "last_rate": 0.75} and not settled(e)
    record_group(e, [True] * 4)
    assert settled(e)
    record_group(e, [False] * 4)
    assert settled(e)  # all wrong on a second draw: nothing to learn from it for now


def test_entry_stats_survive_a_buffer_save_and_load(tmp_path):
    buf = TaskBuffer("deduction", cap=10)
    e = _entry("k", 3)
    record_group(e, [True, False])
    buf.add(e)
    buf.save(tmp_path / "d.jsonl")
    other = TaskBuffer("deduction", cap=10)
    other.load(tmp_path / "d.jsonl")
    assert other.entries()[0].stats == e.stats


def test_a_curriculum_step_spreads_solver_prompts_over_the_buffer(executor):
    """Over three steps with one solver prompt each, the curriculum draws three different entries."""
    cfg = SelfPlayConfig(tasks=["deduction"], propose_per_task=0, solve_per_task=1, n_solve=2,
                         solver_draw="curriculum")
    tasks = tasks_from_config(cfg)
    buffers = Buffers.empty(["deduction"], cap=10)
    for i in range(3):
        buffers["deduction"].add(Entry("deduction", {"program": f"def f(x):\n    return x * {i + 2} - 1",
                                                     "inputs": "3", "output": str(3 * (i + 2) - 1)}, f"e{i}", i))
    policy = ScriptedPolicy(lambda prompt, n: ["<think>3 times</think><answer>5</answer>"] * n)
    drawn = []
    for step in range(3):
        res = selfplay_step(policy, buffers, tasks, executor, cfg, LADDER, lambda t: t, random.Random(step), step)
        drawn += [s.prompt for s in res.samples][:1]
    assert len(set(drawn)) == 3
    assert all(e.stats["draws"] == 1 for e in buffers["deduction"].entries())


@pytest.mark.parametrize("draw", ["curriculum", "uniform"])
def test_an_entry_drawn_solver_max_draws_times_is_no_longer_a_solver_prompt(draw):
    """Memorised prompts: each re-draw of the same few entries raised accuracy and shortened the reasoning. With
    solver_max_draws 2, entries with two groups of answers (a new task's Monte-Carlo solves count as one) are left
    out, and a step with none left draws fewer prompts; 0 keeps every entry."""
    buffers = Buffers.empty(["deduction"], cap=10)
    for i, draws in enumerate([0, 1, 2, 5]):
        buffers["deduction"].add(_entry(f"e{i}", i, draws=draws))
    tasks = {"deduction": make_task("deduction")}
    capped = SelfPlayConfig(tasks=["deduction"], solve_per_task=4, solver_draw=draw, solver_max_draws=2)
    assert sorted(e.key for _, e in solver_entries(buffers, tasks, capped, random.Random(0), [])) == ["e0", "e1"]
    unlimited = SelfPlayConfig(tasks=["deduction"], solve_per_task=4, solver_draw=draw)
    assert len(solver_entries(buffers, tasks, unlimited, random.Random(0), [])) == 4
    for e in buffers["deduction"].entries():
        e.stats["draws"] = 2
    assert solver_entries(buffers, tasks, capped, random.Random(0), []) == []


def test_uniform_draws_are_unchanged_by_default():
    cfg = SelfPlayConfig(tasks=["deduction"], solve_per_task=2)
    buffers = Buffers.empty(["deduction"], cap=10)
    for i in range(4):
        buffers["deduction"].add(_entry(f"e{i}", i))
    tasks = {"deduction": make_task("deduction")}
    a = solver_entries(buffers, tasks, cfg, random.Random(1), [])
    assert [e.key for _, e in a] == [e.key for e in buffers["deduction"].sample(2, random.Random(1))]


# ---------------------------------------------------------------- references as calls


def test_references_shown_as_calls_carry_no_code_to_paste():
    task = make_task("deduction", reference_style="calls")
    ref = {"program": REFERENCE, "inputs": "[1, 2, 3, 4]", "output": "[2, 4, 8]"}
    prompt = task.propose_prompt({"references": [ref]})
    assert "- f([1, 2, 3, 4]) returns [2, 4, 8]" in prompt
    assert "out.append" not in prompt and "x % 3" not in prompt
    assert "out.append" in make_task("deduction").propose_prompt({"references": [ref]})  # AZR's style shows it


# ---------------------------------------------------------------- induction without a hint


def _induction(executor, text, answer, **overrides):
    """One step whose induction proposer writes `text` for DOUBLE (the only program in the buffers) and whose
    solver answers answer(prompt); the induction proposal's sample and the step."""
    buffers = Buffers.empty(("deduction", "induction"), cap=100)
    buffers["deduction"].add(Entry("deduction", {"program": DOUBLE, "inputs": "1", "output": "3"}, "k", 0))
    cfg = SelfPlayConfig(tasks=["deduction", "induction"], propose_per_task=1, n_mc=2, solve_per_task=0,
                         k_references=2, **overrides)
    policy = ScriptedPolicy(lambda prompt, n: [text] * n if "write 6 inputs" in prompt else
                            ["no task"] * n if "create" in prompt else [answer(prompt) if callable(answer) else answer for _ in range(n)])
    res = selfplay_step(policy, buffers, tasks_from_config(cfg), executor, cfg, LADDER, lambda t: t,
                        random.Random(0), step=1)
    return next(s for s in res.samples if s.role == "propose" and s.task == "induction"), res


DOUBLE = "def f(x):\n    return x * 2 + 1"
SIX_CALLS = "<think>six numbers</think>\n```python\n" + "\n".join(f"f({x})" for x in (1, 2, 3, 5, 8, 13)) + "\n```"
RIGHT = "<think>2x+1</think><answer>\n```python\ndef f(x):\n    return 2 * x + 1\n```\n</answer>"
WRONG = "<think>?</think><answer>\n```python\ndef f(x):\n    return x\n```\n</answer>"


def test_an_induction_hint_is_required_unless_the_config_makes_it_optional(executor):
    required, _ = _induction(executor, SIX_CALLS, WRONG)
    assert required.outcome == "invalid: no hint (a line starting with Hint:, or a message block)"
    assert required.reward == LADDER.propose_invalid
    shown = []
    answers = iter([RIGHT, WRONG] * 4)
    optional, res = _induction(executor, SIX_CALLS, lambda p: shown.append(p) or next(answers),
                               induction_hint="optional")
    assert optional.outcome == "valid" and optional.extra["solve_rate"] == 0.5 and optional.reward == 0.5
    assert shown and all("Message: (none)" in p and "Input: f(1)" in p for p in shown)


@pytest.mark.parametrize("text, outcome", [
    (SIX_CALLS + "\nHint: ...", "invalid: hint is the template's placeholder"),  # the template's hint, copied
    (SIX_CALLS + "\nHint: return x * 2 + 1", "invalid: hint quotes the program"),
    ("<think>one number</think>\n```python\n" + "f(4)\n" * 6 + "```", "invalid: fewer than 6 distinct valid inputs"),
])
def test_an_optional_hint_lets_no_giveaway_or_padding_through(executor, text, outcome):
    """The cheapest ways around an optional hint: paste the template's or the program's line as the hint, or
    write one input six times. Each still fails as it does with the hint required."""
    p, _ = _induction(executor, text, RIGHT, induction_hint="optional")
    assert p.outcome == outcome and p.reward <= LADDER.propose_failed


def test_a_hintless_task_the_solver_never_solves_earns_the_unlearnable_rung(executor):
    """Leaving the hint out makes a task harder, not better paid: solved 0 of 2, it earns what every valid task
    nobody solves earns, below any learnable one."""
    p, _ = _induction(executor, SIX_CALLS, WRONG, induction_hint="optional")
    assert p.outcome == "valid" and p.extra["solve_rate"] == 0.0
    assert p.reward == LADDER.propose_extreme < 0.5
