"""Rewards and advantages: pure functions, exact values."""

import math

import pytest

from minazr.selfplay.advantages import ESTIMATORS, token_weights
from minazr.driver.config import RewardsConfig
from minazr.selfplay.rewards import RewardScheme, learnability, proposer_reward, solver_reward

AZR = RewardScheme.from_config(RewardsConfig())


def test_solver_rewards():
    assert [solver_reward(o, AZR) for o in ("correct", "wrong", "unparseable")] == [1.0, -0.5, -1.0]
    seed = RewardScheme.from_config(RewardsConfig(preset="seed"))
    assert [solver_reward(o, seed) for o in ("correct", "wrong", "unparseable")] == [10.0, -10.0, -10.0]


def test_learnability():
    assert learnability(0.25, 0.0) == 0.75
    assert learnability(0.0, 0.0) == 0.0 and learnability(1.0, 0.0) == 0.0
    code = RewardScheme.from_config(RewardsConfig(preset="azr_code"))
    assert proposer_reward(True, 1.0, code) == -0.5 and proposer_reward(True, 0.0, code) == -0.5
    assert proposer_reward(True, 0.5, code) == 0.5
    assert proposer_reward(False, None, AZR) == -1.0
    with pytest.raises(ValueError):
        learnability(1.5, 0.0)


def test_seed_preset_and_overrides():
    seed = RewardScheme.from_config(RewardsConfig(preset="seed"))
    assert proposer_reward(True, 0.0, seed) == 10.0 and proposer_reward(False, None, seed) == -10.0
    custom = RewardScheme.from_config(RewardsConfig(preset="azr", solve_wrong=0.0, propose_extreme=-0.25))
    assert solver_reward("wrong", custom) == 0.0 and proposer_reward(True, 1.0, custom) == -0.25
    assert solver_reward("correct", custom) == 1.0


def test_grpo_whitens_per_prompt():
    adv = ESTIMATORS["grpo"]([1.0, 0.0, 1.0, 1.0, 5.0], [0, 0, 1, 1, 2], [None] * 5)
    assert adv[0] == pytest.approx(1.0, abs=1e-5) and adv[1] == pytest.approx(-1.0, abs=1e-5)
    assert adv[2:] == [0.0, 0.0, 0.0]  # zero-variance group and a group of one: 0, not NaN


def test_trr_plus_plus_whitens_per_task_and_role():
    rewards = [0.5, -1.0, -1.0, 1.0, -0.5, 1.0]
    keys = [("deduction", "propose")] * 3 + [("deduction", "solve")] * 2 + [("math", "solve")]
    adv = ESTIMATORS["trr++"](rewards, list(range(6)), keys)
    s = math.sqrt(0.5)
    assert adv == pytest.approx([1 / s, -0.5 / s, -0.5 / s, 1.0, -1.0, 0.0], abs=1e-5)


def test_batch_mean():
    assert ESTIMATORS["batch_mean"]([10.0, -10.0, 10.0, 10.0], [0, 1, 2, 3], [None] * 4) == [5.0, -15.0, 5.0, 5.0]


def test_all_equal_batch_has_no_nan():
    for name, est in ESTIMATORS.items():
        adv = est([-1.0] * 4, [0, 0, 1, 1], [("a", "b")] * 4)
        assert adv == [0.0] * 4, name
    assert ESTIMATORS["trr++"]([], [], []) == []


def test_token_weights():
    assert token_weights([2, 6], "token") == [0.125, 0.125]
    assert token_weights([2, 6, 0], "sequence") == pytest.approx([1 / 6, 1 / 18, 0.0])
    assert token_weights([], "token") == []
    with pytest.raises(ValueError):
        token_weights([1], "nope")
