"""The canary's pure parts: pairing a canary with the one before training, its metrics, the two-in-a-row stop rule,
and the rule's state read back from RUN_DIR/eval/ as a resumed run does (made-up per-item rows, no engine)."""

import json

import pytest

from minazr.driver import canary
from minazr.driver.config import load_config
from minazr.driver.ray_session import TrainError
from minazr.driver.train import check_canary


def rows(correct: list[bool], prefix: str = "gsm8k") -> list[dict]:
    return [{"id": f"{prefix}_{i}", "correct": c} for i, c in enumerate(correct)]


def write_canary(run_dir, step: int, correct: dict[str, list[bool]], finished: bool = True) -> None:
    """What write_reports leaves: <bench>.jsonl per benchmark, eval.json last."""
    out = canary.canary_dir(run_dir, step)
    out.mkdir(parents=True)
    for bench, flags in correct.items():
        (out / f"{bench}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(flags, bench)))
    if finished:
        (out / "eval.json").write_text(json.dumps({b: {"n": len(f)} for b, f in correct.items()}))


def test_net_vs_base_counts_items_gained_minus_items_lost_by_id():
    base = rows([True, True, True, False, False])
    now = rows([True, False, False, True, False])  # lost items 1 and 2, gained item 3
    assert canary.net_vs_base(base, now) == -1
    assert canary.net_vs_base(base, base) == 0
    assert canary.net_vs_base(base, list(reversed(now))) == -1  # paired by id, not by position
    assert canary.net_vs_base(base[:2], now) == -1  # only the items both answered count


def test_canary_metrics_name_accuracy_format_and_net_per_benchmark():
    summary = {"gsm8k": {"accuracy": 0.25, "format_rate": 0.5}, "cruxeval-o": {"accuracy": 0.5, "format_rate": 1.0}}
    now = {"gsm8k": rows([True, False, False, False]), "cruxeval-o": rows([True, False], "cruxeval-o")}
    base = {"gsm8k": rows([True, True, True, False])}  # no cruxeval-o in the baseline: no net for it
    assert canary.canary_metrics(summary, now, base) == {
        "eval/gsm8k": 0.25, "eval/cruxeval-o": 0.5, "eval/format_rate/gsm8k": 0.5, "eval/format_rate/cruxeval-o": 1.0,
        "eval/net_vs_base/gsm8k": -2}


@pytest.mark.parametrize("nets, stop_items, stop", [
    ([], 3, False),
    ([-5], 3, False),            # one bad canary is not a trend
    ([-3, -3], 3, True),         # two in a row at the threshold
    ([-4, -1, -4], 3, False),    # not consecutive
    ([-1, -4, -6], 3, True),
    ([-9, -9], 0, False),        # 0: the rule is off
    ([2, 5], 3, False),
])
def test_the_stop_rule_needs_two_consecutive_canaries_at_the_threshold(nets, stop_items, stop):
    assert canary.should_stop(nets, stop_items) is stop


def test_history_is_read_back_from_the_run_directory(tmp_path):
    """What a resumed run sees: every finished canary after a training step, paired with the baseline, in step
    order; a canary cut off before its eval.json does not count."""
    assert canary.history(tmp_path) == []  # no baseline: nothing to compare with
    write_canary(tmp_path, canary.BASELINE_STEP, {"gsm8k": [True] * 6 + [False] * 2})
    write_canary(tmp_path, 11, {"gsm8k": [True] * 2 + [False] * 6})  # lost 4
    write_canary(tmp_path, 3, {"gsm8k": [True] * 5 + [False, True, True]})  # lost 1, gained 2
    write_canary(tmp_path, 7, {"gsm8k": [False] * 6 + [False] * 2})  # lost 6
    write_canary(tmp_path, 15, {"gsm8k": [False] * 8}, finished=False)
    assert canary.history(tmp_path) == [(3, 1), (7, -6), (11, -4)]
    assert canary.should_stop([net for _, net in canary.history(tmp_path)], 4)
    assert not canary.should_stop([net for _, net in canary.history(tmp_path)], 5)
    assert canary.history(tmp_path, "cruxeval-o") == []  # the baseline never ran it


def test_drop_after_removes_the_canaries_a_resumed_or_fresh_run_redoes(tmp_path):
    for step in (canary.BASELINE_STEP, 3, 7, 11):
        write_canary(tmp_path, step, {"gsm8k": [True, False]})
    (tmp_path / "eval" / "notes").mkdir()  # anything else in eval/ is left alone
    assert canary.drop_after(tmp_path, 7) == ["step_000011"]  # resumed at step 8: steps 8.. are redone
    assert [s for s, _ in canary.history(tmp_path)] == [3, 7]
    assert sorted(canary.drop_after(tmp_path, canary.BASELINE_STEP - 1)) == ["baseline", "step_000003", "step_000007"]
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == ["notes"]
    assert canary.drop_after(tmp_path / "missing", 0) == []


def test_a_stop_rule_that_cannot_fire_is_refused_before_the_run(capsys):
    check_canary(load_config(None, ["eval.every=4", "eval.canary_stop_items=3"]))
    check_canary(load_config(None, []))  # off by default
    check_canary(load_config(None, ["eval.canary_stop_items=3"]))  # no canaries (a quick try): off, said once
    assert "eval.every=0: no canaries, so the stop rule (eval.canary_stop_items=3) is off" in capsys.readouterr().err
    with pytest.raises(TrainError, match="add gsm8k to eval.canary_benchmarks"):
        check_canary(load_config(None, ["eval.every=4", "eval.canary_stop_items=3",
                                        "eval.canary_benchmarks=[cruxeval-o]"]))


def test_the_canary_and_the_final_evaluation_have_their_own_settings():
    cfg = load_config(None, [])
    assert cfg.eval.canary_benchmarks == ["cruxeval-o", "cruxeval-i", "gsm8k"]
    assert (cfg.eval.canary_items, cfg.eval.canary_stop_items) == (0, 0)
    assert "gsm8k-train" in cfg.eval.benchmarks  # the final evaluation's list is unchanged


def test_a_run_logs_its_canaries_and_the_rule_stops_it_also_after_a_resume(executor, tmp_path):
    """train.py's canary wiring with a scripted policy that answers the first `right` of 4 GSM8K items: the baseline
    is logged at step -1 with net 0; each canary logs its net against it; the second canary in a row that lost >= 2
    items stops the run. A run resumed in between reads the rule's state back from RUN_DIR/eval/ and stops at the
    same canary, without running the baseline again."""
    from conftest import ScriptedPolicy
    from minazr.driver import train
    from minazr.eval.evaluate import load_benchmarks

    cfg = load_config(None, ["eval.every=1", "eval.canary_benchmarks=[gsm8k]", "eval.canary_items=4",
                             "eval.canary_stop_items=2", "eval.max_tokens=16"])
    evals = load_benchmarks(cfg.eval.canary_benchmarks, None, cfg.eval.canary_items)
    items, state = evals["gsm8k"][1], {"right": 4}

    def script(prompt, n):
        i = next(k for k, it in enumerate(items) if it.entry.data["problem"] in prompt)
        return [f"The answer is {items[i].gold}" if i < state["right"] else "The answer is -1"]

    policy, logged, lines = ScriptedPolicy(script), [], []
    sink = type("Sink", (), {"log": lambda self, metrics, step: logged.append((step, metrics))})()
    train._canary_before_training(cfg, tmp_path, 0, policy, executor, lambda s: s, evals, sink, lines.append)
    ((step, m),) = logged
    assert step == canary.BASELINE_STEP and (m["eval/gsm8k"], m["eval/net_vs_base/gsm8k"]) == (1.0, 0)
    assert lines[-1].startswith("canary before training: gsm8k 100.0% (n=4)")

    def canaries(steps):
        for step, right, stops in steps:
            state["right"] = right
            m = train._evaluate(cfg, tmp_path, step, policy, executor, lambda s: s, evals, lines.append)
            reason = train._stop_rule(cfg, tmp_path, step, m, lines.append)
            assert (m["eval/gsm8k"], m["eval/net_vs_base/gsm8k"]) == (right / 4, right - 4)
            assert m["eval/canary_stop"] == int(stops) and bool(reason) == stops
        return reason

    reason = canaries([(0, 2, False), (1, 3, False), (2, 2, False), (3, 1, True)])
    assert "lost 2 items net after step 2 and 3 after step 3" in reason and "eval.canary_stop_items=2" in reason
    assert "net -3 items vs before training" in lines[-2]

    canary.drop_after(tmp_path, 1)  # resumed from the checkpoint of step 2: steps 2.. are redone
    calls = len(policy.calls)
    train._canary_before_training(cfg, tmp_path, 2, policy, executor, lambda s: s, evals, sink, lines.append)
    assert len(policy.calls) == calls and len(logged) == 1  # reused from disk, not run or logged again
    assert canaries([(2, 2, False), (3, 1, True)])
