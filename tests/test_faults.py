"""Failures with real processes and real signals: a rollout worker SIGKILLed mid-generate and during a training run,
the driver SIGKILLed and resumed (compared with an uninterrupted run), a weight-server port already in use."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY

from minazr.bench.faults import kill_when_busy

pytestmark = pytest.mark.slow

RUN2 = TINY + ["selfplay.tasks=[deduction, math]", "rollout.num_workers=2", "rollout.num_cpus=0.5"]


def minazr(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "minazr", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, **kwargs)


def wait_for(predicate, proc, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"run ended (rc {proc.returncode}) before {what}: {proc.stderr.read()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def metrics(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(ln) for ln in path.read_text().splitlines()] if path.is_file() else []


def train_once(ray, learner, ids: list[int], version: int) -> dict:
    """One learner step that makes the completion ids[1:] (after the prompt ids[:1]) likelier, published as
    `version`; the update's metrics."""
    sample = {"prompt_ids": ids[:1], "completion_ids": ids[1:], "advantage": 1.0,
              "token_weight": 1 / len(ids[1:]), "logprobs": ray.get(learner.score.remote(ids, 1))}
    return ray.get(learner.train_step.remote([sample], version), timeout=300)


def test_pool_replaces_a_worker_killed_mid_generate():
    """Against a learner that has published a trained version: SIGKILL one of two workers while it generates; every
    request still gets exactly its completions, the replacement serves that trained version, the survivor is
    untouched, and the next push brings every worker to the same new version."""
    import ray

    from learner.actor import start_learner
    from minazr.driver.config import load_config
    from minazr.driver.models import resolve_model
    from minazr.contracts.policy import GenRequest, Sampling
    from minazr.driver.ray_session import connect_ray
    from rollout.worker import start_pool

    cfg = load_config(None, RUN2 + ["rollout.chunks_per_worker=2", "learner.lr=1e-3", "learner.grad_clip=0"])
    connect_ray(cfg.train)
    try:
        path = resolve_model(cfg.model.name)
        learner = start_learner(path, cfg.learner, cfg.rollout, seed=0)
        address = ray.get(learner.address.remote(), timeout=300)
        assert address.startswith("tcp://127.0.0.1:")  # a private local cluster: loopback only
        ids = list(range(100, 140))
        base = ray.get(learner.score.remote(ids, 1), timeout=300)

        def train(version):
            return train_once(ray, learner, ids, version)

        assert train(1)["version"] == 1
        pool = start_pool(path, cfg.rollout, seed=0)
        pool.load_weights(address, None)
        assert pool.versions == [1, 1]
        trained = pool.score(ids, 1)[0]
        assert sum(trained) / len(trained) > sum(base) / len(base) + 0.5  # version 1 really is another model

        before = pool.info()
        requests = [GenRequest(f"Write a long story about the number {i}.", 2) for i in range(16)]
        sampling = Sampling(temperature=1.0, max_tokens=48, ignore_eos=True, seed=11)
        killed, stop = kill_when_busy(before[1]["pid"], 1.0)  # once it is generating: an event, not a timer
        gens = pool.generate(requests, sampling)
        stop.set()
        assert killed.is_set(), "the worker finished before it had used 1 CPU-second: nothing was tested"
        assert pool.restarts == 1
        assert [len(g.completions) for g in gens] == [2] * 16
        assert all(len(c.token_ids) == 48 == len(c.logprobs) for g in gens for c in g.completions)
        after = pool.info()
        assert after[0]["pid"] == before[0]["pid"] and after[1]["pid"] != before[1]["pid"]
        assert pool.versions == [1, 1]  # the replacement fetched the trained version before serving
        a, b = pool.score(ids, 1)
        assert sum(abs(x - y) for x, y in zip(a, b)) / len(a) < 0.02  # both serve the same weights
        with pytest.raises(OSError):
            os.kill(before[1]["pid"], 0)  # the killed process is gone

        assert train(2)["version"] == 2  # the next push reaches every worker, the replacement included
        pool.load_weights(address, None)
        assert pool.versions == [2, 2]
        a, b = pool.score(ids, 1)
        assert sum(abs(x - y) for x, y in zip(a, b)) / len(a) < 0.02
        assert sum(abs(x - y) for x, y in zip(a, trained)) / len(a) > 0.05  # and it is version 2, not 1
        pool.close()
        ray.kill(learner)
    finally:
        ray.shutdown()


def test_train_survives_a_worker_sigkill(tmp_path):
    """A real run with two workers: kill one after the first step; the run finishes every step with every sample."""
    run = tmp_path / "run"
    proc = minazr("train", f"run.out_dir={run}", "train.steps=2", "train.checkpoint_every=0", *RUN2)
    try:
        wait_for(lambda: len(metrics(run)) >= 1, proc, 600, "the first step")
        victim = json.loads((run / "cluster.json").read_text())["workers"][1]["pid"]
        os.kill(victim, signal.SIGKILL)
        killed_at = len(metrics(run))
        out, err = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-3000:]
    m = metrics(run)
    assert [x["step"] for x in m] == [0, 1]
    assert m[-1]["rollout/restarts"] == 1 and killed_at < 2
    # 2 tasks x (1 proposal + 1 solver prompt x 2 completions), + 2 trained Monte-Carlo solves per valid proposal:
    # nothing lost, nothing counted twice
    valid = [round(x.get("propose/valid_rate/deduction", 0) + x.get("propose/valid_rate/math", 0)) for x in m]
    assert [(x["learner/samples"] + x["learner/skipped_zero_advantage"], x["sandbox_failures"]) for x in m] \
        == [(6 + 2 * v, 0) for v in valid]
    workers = json.loads((run / "cluster.json").read_text())["workers"]
    assert len(workers) == 2


def test_resume_after_driver_sigkill_matches_an_uninterrupted_run(tmp_path):
    """Run A goes straight to 2 steps; run B is SIGKILLed after its first checkpoint and resumed. B must redo
    exactly the missing steps, and (sampling is seeded per request) generate the same prompts and completions."""
    common = ["train.steps=2", "train.checkpoint_every=1", "train.keep_checkpoints=2", *TINY,
              "selfplay.tasks=[deduction, math]"]
    a, b = tmp_path / "a", tmp_path / "b"
    proc = minazr("train", f"run.out_dir={a}", *common)
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]

    proc = minazr("train", f"run.out_dir={b}", *common)
    try:
        wait_for(lambda: (b / "checkpoints" / "latest").is_file(), proc, 600, "the first checkpoint")
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    done_before = [x["step"] for x in metrics(b)]
    assert done_before and done_before[-1] < 1
    from minazr.driver import checkpoint

    resume_step, _, _ = checkpoint.load_driver_state(checkpoint.latest(b))
    kept = [ln for ln in (b / "metrics.jsonl").read_text().splitlines() if json.loads(ln)["step"] < resume_step]
    proc = minazr("train", "--resume", str(b))
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]

    assert [x["step"] for x in metrics(b)] == [0, 1]  # none skipped, none repeated
    # a resume that restarted from step 0 would rewrite these lines (their timings differ) and restart the version
    assert (b / "metrics.jsonl").read_text().splitlines()[:len(kept)] == kept and kept
    assert [x["version"] for x in metrics(b)] == [x["version"] for x in metrics(a)] == [1, 2]
    samples = {run: [json.loads(ln) for ln in (run / "samples.jsonl").read_text().splitlines()] for run in (a, b)}
    for run in (a, b):
        assert sorted({s["step"] for s in samples[run]}) == [0, 1]
    key = lambda s: (s["step"], s["role"], s["task"], s["prompt"])  # noqa: E731
    assert [key(s) for s in samples[a]] == [key(s) for s in samples[b]]  # same buffers, same RNG streams
    differ = [(sa["step"], sa["role"], sa["task"]) for sa, sb in zip(samples[a], samples[b])
              if sa["completion"] != sb["completion"]]
    assert not differ, f"{len(differ)} of {len(samples[a])} completions differ (step, role, task): {differ}"


def test_weight_port_in_use_is_one_line(tmp_path):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = minazr("train", f"run.out_dir={tmp_path / 'run'}", f"learner.weight_port={port}", *TINY)
        _, err = proc.communicate(timeout=600)
    assert proc.returncode == 2 and "Traceback" not in err, err[-3000:]
    ours = [ln for ln in err.splitlines() if ln.startswith("minazr:")]
    assert ours == [ln for ln in err.strip().splitlines()[-1:]], err[-3000:]  # one line of ours, the last one
    assert ours[0].startswith("minazr: failed to start the learner: OSError: weight server cannot bind "
                              f"127.0.0.1:{port}: Address already in use (learner.weight_port)"), ours
    assert "resume" not in ours[0]


def test_a_hung_learner_ends_the_run_with_one_line(tmp_path):
    """SIGSTOP the learner once the cluster is up: the next call to it passes its deadline (rollout.timeout_s), and
    the run ends with one line of ours and exit code 2 instead of waiting forever."""
    run = tmp_path / "run"
    proc = minazr("train", f"run.out_dir={run}", "train.steps=3", "rollout.timeout_s=30", *TINY)
    learner = None
    try:
        wait_for(lambda: (run / "cluster.json").is_file(), proc, 600, "the cluster to start")
        learner = json.loads((run / "cluster.json").read_text())["learner"]["pid"]
        os.kill(learner, signal.SIGSTOP)
        _, err = proc.communicate(timeout=600)
    finally:
        for sig in (signal.SIGCONT, signal.SIGKILL):
            if learner:
                try:
                    os.kill(learner, sig)
                except ProcessLookupError:
                    pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 2 and "Traceback" not in err, err[-3000:]
    ours = [ln for ln in err.splitlines() if ln.startswith("minazr:")]
    assert len(ours) == 1 and ours[0] == err.strip().splitlines()[-1], err[-3000:]
    assert "timed out after 30 s waiting to" in ours[0] and "(rollout.timeout_s)" in ours[0], ours


def test_a_dead_learner_is_a_one_line_error():
    """A learner process that is gone (SIGKILL, the OOM killer) turns the driver's next call into one TrainError
    line naming what was being done (the CLI prints it and exits 2, as for every TrainError)."""
    import ray

    from learner.actor import start_learner
    from minazr.driver.config import load_config
    from minazr.driver.models import resolve_model
    from minazr.driver.ray_session import TrainError, connect_ray, remote_call

    cfg = load_config(None, TINY)
    connect_ray(cfg.train)
    try:
        learner = start_learner(resolve_model(cfg.model.name), cfg.learner, cfg.rollout, seed=0)
        os.kill(ray.get(learner.pid.remote(), timeout=300), signal.SIGKILL)
        with pytest.raises(TrainError) as err:
            remote_call(ray, learner.publish.remote(), 120, "publish weights")
        message = str(err.value)
        assert message.startswith("failed to publish weights: ") and "\n" not in message, message
        assert message.endswith("; resume with `minazr train --resume RUN_DIR`"), message
    finally:
        ray.shutdown()


def test_ctrl_c_interrupts_a_wait_on_a_long_remote_call():
    """Ctrl-C reaches the driver while it waits minutes for a learner update (the run stops; `--resume` continues
    it), and the deadline of the wait still holds. A run started in the background of a script ignores SIGINT (the
    shell sets it so): stop such a run with SIGTERM."""
    import threading

    import ray

    from minazr.driver.config import load_config
    from minazr.driver.ray_session import TrainError, connect_ray, remote_call

    connect_ray(load_config(None, TINY).train)
    # Ctrl-C as a terminal delivers it: this suite may itself run in the background, where SIGINT is ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        slow = ray.remote(num_cpus=0)(lambda: time.sleep(60))
        ref = slow.remote()
        threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGINT)).start()
        with pytest.raises(KeyboardInterrupt):
            remote_call(ray, ref, 600, "run a learner update")
        assert not ray.wait([ref], timeout=0)[0]  # interrupted while the call was still running
        with pytest.raises(TrainError, match=r"^timed out after 1 s waiting to publish weights"):
            remote_call(ray, slow.remote(), 1, "publish weights")
    finally:
        signal.signal(signal.SIGINT, previous)
        ray.shutdown()


def test_workers_that_cannot_be_placed_are_one_line(tmp_path):
    proc = minazr("train", f"run.out_dir={tmp_path / 'run'}", "rollout.num_cpus=64", "rollout.timeout_s=10", *TINY)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 2 and "Traceback" not in err, err[-3000:]
    ours = [ln for ln in err.splitlines() if ln.startswith("minazr:")]
    assert len(ours) == 1 and "cannot place 1 rollout workers of {'CPU': 64.0}" in ours[0], err[-3000:]
    assert "(rollout.num_workers, rollout.num_cpus, rollout.num_gpus, rollout.placement)" in ours[0], ours


def test_bench_faults_runs_and_its_kill_lands_mid_call(tmp_path):
    res = subprocess.run([sys.executable, "-m", "minazr", "bench-faults", "--prompts", "8", "--max-tokens", "48",
                          "--repeats", "1", "--kill-after", "0.3", "--settings", "2x1", "--out", str(tmp_path),
                          "rollout.enforce_eager=true", "rollout.kv_cache_gb=0.5"],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((tmp_path / "bench_faults.json").read_text())
    assert [(p["workers"], p["chunks_per_worker"]) for p in report["pool"]] == [(2, 1)]
    assert all(p["output_tokens_per_s"] > 0 for p in report["pool"])
    kill = report["kill"]
    assert kill["killed_mid_call"] and kill["restarts"] == 1 and kill["all_requests_complete"], kill
    assert kill["call_with_kill_s"] > 0 and kill["normal_call_s"] > 0
