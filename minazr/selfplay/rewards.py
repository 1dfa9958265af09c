"""Rewards: small pure functions over outcomes, with AZR's scheme, a ranked ladder and the seed's as presets.

Solver: `correct` / `wrong` (well-formed but wrong) / `unparseable`.
Proposer, from the bottom up:
    `propose_invalid`    nothing usable: no program or input could be read;
    `propose_duplicate`  a copy or near-copy of a known task, or a rejected proposal that is a known task or an
                         edit of one (a reference or any buffer entry: step.mark_broken_copies). By default the
                         invalid reward: a copy is never worth more than an honest broken proposal, or copying
                         becomes the safe strategy (AZR's code has no duplicate check);
    `propose_failed`     well-formed, but the sandbox rejected it: an error, a trivial task, a giveaway, too long;
    `propose_extreme`    a valid new task the Monte-Carlo solver always or never solved (nothing to learn from it);
    learnability         a valid new task solved sometimes: r = 1 - mean solve rate over n solves (AZR), in (0, 1).
or a flat `propose_flat` for every valid proposal when set (the seed trusted any proposal that parsed).

Presets: "azr" (the paper: extremes 0, every failure -1), "azr_code" (AZR's released code: extremes -0.5),
"ladder" (every rung above the one below it, so a group of proposals almost never ties: experiment 2's proposer
groups were flat 56 times in 64, copies and failures both at -1), "seed" (+10 / -10).
"""

from dataclasses import dataclass, fields

PRESETS = {
    # AZR paper: extremes (always or never solved) are worth 0.
    "azr": dict(solve_correct=1.0, solve_wrong=-0.5, solve_unparseable=-1.0, propose_invalid=-1.0,
                propose_extreme=0.0, propose_flat=None, propose_duplicate=-1.0, propose_failed=-1.0),
    # AZR's released code: valid tasks with solve rate 0 or 1 are worth -0.5.
    "azr_code": dict(solve_correct=1.0, solve_wrong=-0.5, solve_unparseable=-1.0, propose_invalid=-1.0,
                     propose_extreme=-0.5, propose_flat=None, propose_duplicate=-1.0, propose_failed=-1.0),
    # Ranked: learnable new > unlearnable new > rejected by the sandbox > copies and unreadable text.
    "ladder": dict(solve_correct=1.0, solve_wrong=-0.5, solve_unparseable=-1.0, propose_invalid=-1.0,
                   propose_extreme=-0.25, propose_flat=None, propose_duplicate=-1.0, propose_failed=-0.5),
    # The seed project: +10 / -10, and +10 for any valid proposal.
    "seed": dict(solve_correct=10.0, solve_wrong=-10.0, solve_unparseable=-10.0, propose_invalid=-10.0,
                 propose_extreme=0.0, propose_flat=10.0, propose_duplicate=-10.0, propose_failed=-10.0),
}


@dataclass(frozen=True)
class RewardScheme:
    solve_correct: float
    solve_wrong: float
    solve_unparseable: float
    propose_invalid: float
    propose_extreme: float
    propose_flat: float | None
    propose_duplicate: float = -1.0
    propose_failed: float = -1.0

    @classmethod
    def from_config(cls, cfg) -> "RewardScheme":
        """The preset's values, each replaced by the config's when that one is set (not None)."""
        values = dict(PRESETS[cfg.preset])
        for f in fields(cls):
            override = getattr(cfg, f.name, None)
            if override is not None:
                values[f.name] = override
        return cls(**values)


def solver_reward(outcome: str, scheme: RewardScheme) -> float:
    return {"correct": scheme.solve_correct, "wrong": scheme.solve_wrong,
            "unparseable": scheme.solve_unparseable}[outcome]


def learnability(solve_rate: float, extreme: float) -> float:
    """AZR's proposer reward: tasks the solver sometimes (not always, not never) solves are worth most when hard."""
    if not 0.0 <= solve_rate <= 1.0:
        raise ValueError(f"solve rate {solve_rate} outside [0, 1]")
    return 1.0 - solve_rate if 0.0 < solve_rate < 1.0 else extreme


def proposer_reward(valid: bool, solve_rate: float | None, scheme: RewardScheme, well_formed: bool = False) -> float:
    """`well_formed`: an invalid proposal that parsed (a program and its input were read) and was rejected by
    validation, as opposed to text nothing could be read from."""
    if not valid:
        return scheme.propose_failed if well_formed else scheme.propose_invalid
    if scheme.propose_flat is not None:
        return scheme.propose_flat
    if solve_rate is None:
        raise ValueError("a valid proposal needs its Monte-Carlo solve rate")
    return learnability(solve_rate, scheme.propose_extreme)
