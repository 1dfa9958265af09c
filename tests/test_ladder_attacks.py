"""Adversarial checks of the ladder preset's copy rungs: the cheapest ways a proposer gets the 'failed' rung (-0.5)
for what is a copy, and honest proposals the resemblance check sends to the copy rung (-1). Driven through the
real step (selfplay_step, make_task, the real sandbox) with the helpers of test_farming."""

import pytest
from test_farming import HONEST, proposal, play, with_reference

from minazr.driver.config import RewardsConfig
from minazr.selfplay.rewards import RewardScheme
from minazr.selfplay.tasks import Entry

LADDER = RewardScheme.from_config(RewardsConfig(preset="ladder"))
REFERENCE = "def f(xs):\n    out = []\n    for x in xs:\n        if x % 3:\n            out.append(x * 2)\n    return out"


def _shown(res) -> str:
    return "\n".join(req.prompt for req, _ in res.requests if req.prompt.startswith("## Task: create"))


# ---------------------------------------------------------------- 1. a copy of a buffer entry the prompt did not show


@pytest.mark.parametrize("broken", [
    REFERENCE,  # verbatim, on an input that crashes it
    REFERENCE.replace("return out", "return out + missing"),  # pasted, then broken
])
@pytest.mark.parametrize("style", ["program", "calls"])
def test_a_broken_copy_of_a_buffer_entry_the_prompt_did_not_show_is_a_copy(executor, broken, style):
    """The proposer also sees buffer programs as a deduction solver (and, under reference_style: calls, only
    there): pasting one it was not shown as a reference, broken, earns -0.5 today, like an honest failure."""
    buffers = with_reference(REFERENCE, "[1, 2, 3, 4]", "[2, 4, 8]")
    buffers["deduction"].add(Entry("deduction", {"program": HONEST, "inputs": "[4, 5]", "output": "[10, 8]"},
                                   "other", step=1))
    (p,), _, res = play(executor, proposal(broken, "None"), buffers=buffers, scheme=LADDER, k_references=1,
                        reference_style=style)
    assert "out.append" not in _shown(res) and "[2, 4, 8]" not in _shown(res)  # REFERENCE was not among the shown
    assert p.outcome.startswith("duplicate") and p.reward == LADDER.propose_duplicate, (p.outcome, p.reward)


# ---------------------------------------------------------------- 2. a shown reference, padded, then broken


@pytest.mark.parametrize("broken", [
    # one throwaway line first: every bound name is renumbered (v1 -> v2, ...), the token ratio falls to 0.72
    REFERENCE.replace("    out = []", "    k = 0\n    out = []").replace("return out", "return out + missing"),
    # a string nobody reads dilutes the ratio (comments and docstrings are dropped, this is not)
    REFERENCE.replace("    return out", "    note = 'keep what three does not divide and double it'\n"
                                         "    return out + missing"),
])
def test_a_shown_reference_padded_then_broken_is_still_a_copy(executor, broken):
    buffers = with_reference(REFERENCE, "[1, 2, 3, 4]", "[2, 4, 8]")
    (p,), _, _ = play(executor, proposal(broken, "[5, 6, 7]"), buffers=buffers, scheme=LADDER)
    assert p.outcome.startswith("duplicate") and p.reward == LADDER.propose_duplicate, (p.outcome, p.reward)


# ---------------------------------------------------------------- 3. short, different programs


@pytest.mark.parametrize("reference,inputs,output,program,good,bad", [
    # sum -> max, * -> -: another function (resemblance 0.80)
    ("def f(n):\n    return sum(range(n)) * 2", "5", "20", "def f(n):\n    return max(range(n)) - 2", "7", "0"),
    # reversed -> sorted: another function (resemblance 0.91)
    ("def f(s):\n    return ''.join(reversed(s))", "'abc'", "'cba'", "def f(s):\n    return ''.join(sorted(s))",
     "'banana'", "5"),
])
def test_a_short_different_program_that_crashes_keeps_the_failed_rung(executor, reference, inputs, output, program,
                                                                     good, bad):
    """On a good input the program is a valid new task (no copy: the behaviour check lets it through); the same
    program on an input that crashes it is called an edited copy, -1 instead of the failed rung's -0.5."""
    (ok,), _, _ = play(executor, proposal(program, good), buffers=with_reference(reference, inputs, output),
                       scheme=LADDER)
    assert ok.outcome == "valid", ok.outcome
    (p,), _, _ = play(executor, proposal(program, bad), buffers=with_reference(reference, inputs, output),
                      scheme=LADDER)
    assert p.reward == LADDER.propose_failed, (p.outcome, p.reward)
