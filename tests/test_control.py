"""The run directory's control channel (minazr/contracts/control.py) and `minazr scale`'s refusals, with a real
driver-side listener thread and a stand-in pool (the real pool: tests/test_rollout_pool.py; a real run:
tests/test_scaling.py)."""

import json
import subprocess
import sys
import threading
import time

import pytest

from minazr.contracts import control
from minazr.contracts.control import Beacon, ControlError, ask, driver_state
from minazr.driver.scaling import ScaleListener


class _Pool:
    def __init__(self, refuse_above: int = 4):
        self.asked, self.refuse_above = [], refuse_above

    def request(self, n):
        self.asked.append(n)
        if n > self.refuse_above:
            return False, f"refused: no room for {n}"
        return True, f"1 -> {n} rollout workers"


def _run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("")
    return run


def test_ask_gets_the_driver_answer_and_cleans_up(tmp_path):
    run, pool, lines = _run(tmp_path), _Pool(), []
    listener = ScaleListener(run, pool, lines.append).start()
    try:
        assert ask(run, 2, timeout_s=30) == control.Reply(True, "1 -> 2 rollout workers")
        assert ask(run, 9, timeout_s=30) == control.Reply(False, "refused: no room for 9")
    finally:
        listener.close()
    assert pool.asked == [2, 9] and lines == ["minazr scale: 1 -> 2 rollout workers",
                                              "minazr scale: refused: no room for 9"]
    assert sorted(p.name for p in (run / "control").iterdir()) == []  # requests, replies, beacon: all gone


def test_no_run_no_driver_stale_driver_and_zero_workers_are_one_line(tmp_path):
    with pytest.raises(ControlError, match="no such run directory"):
        ask(tmp_path / "nope", 2)
    run = _run(tmp_path)
    with pytest.raises(ControlError, match=r"no driver is running this run \(it finished or stopped\)"):
        ask(run, 2)
    beacon = Beacon(run)
    assert driver_state(run)["pid"] > 0
    with pytest.raises(ControlError, match=r"its driver \(pid \d+ on .*\) has not been heard from for \d+ s"):
        driver_state(run, now=time.time() + control.STALE_S + 1)
    with pytest.raises(ControlError, match="at least one rollout worker"):
        ask(run, 0)
    beacon.close()
    with pytest.raises(ControlError, match="no driver is running this run"):
        driver_state(run)


def test_an_unanswered_request_is_withdrawn(tmp_path):
    run = _run(tmp_path)
    Beacon(run)  # alive, but nobody reads requests
    t0 = time.monotonic()
    with pytest.raises(ControlError, match="did not answer within 1 s; the request was withdrawn"):
        ask(run, 2, timeout_s=1.0)
    assert time.monotonic() - t0 < 10 and not list((run / "control").glob("scale-*"))


def test_malformed_requests_are_refused_not_crashing_the_listener(tmp_path):
    run = _run(tmp_path)
    beacon = Beacon(run)
    for name, text in [("scale-a.json", "{not json"), ("scale-b.json", json.dumps({"workers": "2"})),
                       ("scale-c.json", json.dumps({"workers": True})), ("scale-d.json", json.dumps([1]))]:
        (run / "control" / name).write_text(text)
    assert beacon.requests() == []
    replies = {p.name: json.loads(p.read_text()) for p in (run / "control").glob("reply-*.json")}
    assert sorted(replies) == ["reply-a.json", "reply-b.json", "reply-c.json", "reply-d.json"]
    assert not any(r["ok"] for r in replies.values())
    (run / "control" / "scale-e.json").write_text(json.dumps({"id": "e", "workers": 3}))
    assert beacon.requests() == [control.Request("e", 3)]


def test_a_slow_pool_does_not_stop_the_beacon_answering_others(tmp_path):
    """The listener answers one request at a time; a request that waits for room (a slow placement) still gets
    its answer, and the next one after it."""
    run = _run(tmp_path)

    class Slow(_Pool):
        def request(self, n):
            time.sleep(1.5)
            return super().request(n)

    listener = ScaleListener(run, Slow(), lambda line: None).start()
    try:
        answers = []
        threads = [threading.Thread(target=lambda n=n: answers.append(ask(run, n, timeout_s=30))) for n in (2, 3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        listener.close()
    assert sorted(a.message for a in answers) == ["1 -> 2 rollout workers", "1 -> 3 rollout workers"]


def test_cli_refusals_exit_2_with_one_line(tmp_path):
    run = _run(tmp_path)
    cases = [([str(tmp_path / "nope"), "--workers", "2"], "no such run directory"),
             ([str(run), "--workers", "2"], "no driver is running this run"),
             ([str(run), "--workers", "0"], "at least one rollout worker")]
    for args, expected in cases:
        res = subprocess.run([sys.executable, "-m", "minazr", "scale", *args], capture_output=True, text=True,
                             timeout=120)
        assert res.returncode == 2 and expected in res.stderr, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1 and not res.stdout, res.stderr


def test_cli_prints_the_accepted_answer(tmp_path):
    run = _run(tmp_path)
    listener = ScaleListener(run, _Pool(), lambda line: None).start()
    try:
        ok = subprocess.run([sys.executable, "-m", "minazr", "scale", str(run), "--workers", "3"],
                            capture_output=True, text=True, timeout=120)
        refused = subprocess.run([sys.executable, "-m", "minazr", "scale", str(run), "--workers", "7"],
                                 capture_output=True, text=True, timeout=120)
    finally:
        listener.close()
    assert ok.returncode == 0 and ok.stdout == "minazr scale: 1 -> 3 rollout workers\n", ok.stderr
    assert refused.returncode == 2 and refused.stderr == "minazr: scale: refused: no room for 7\n"


def test_a_withdrawn_request_is_never_carried_out_and_a_claimed_one_is_waited_for(tmp_path):
    run, pool = _run(tmp_path), _Pool()
    Beacon(run)
    with pytest.raises(ControlError, match="withdrawn") as e:
        ask(run, 3, timeout_s=0.5)  # nobody listening yet
    assert e.value.exit_code == 1
    listener = ScaleListener(run, pool, lambda line: None).start()
    try:
        time.sleep(1.5)
        assert pool.asked == []  # the withdrawn request was not acted on later

        class Slow(_Pool):
            def request(self, n):
                time.sleep(2.0)  # longer than the asker's timeout: it was claimed, so the asker waits on
                return super().request(n)

        listener.pool = Slow()
        assert ask(run, 2, timeout_s=1.5) == control.Reply(True, "1 -> 2 rollout workers")
    finally:
        listener.close()
    assert not list((run / "control").glob("*.json"))
