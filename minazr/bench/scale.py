"""`minazr bench --scale-steps N`: what growing the rollout side of a running job costs and brings.

    minazr bench --scale-only --scale-steps 3 --out runs/bench-scale

Starts a two-node Ray cluster on this machine (a head and a second node joined with `ray start --address`, each
with room for one rollout worker), runs `minazr train` on it with one worker, and after N steady steps (the first
step is warm-up) asks for two with `minazr scale`'s own request. Once the joiner has served N steps it asks for one
again and lets the run finish. Reports, from the run's own metrics and scale events:
  - step time and in-loop generation tokens/s with one worker and with two;
  - the time from the request to the joiner serving (engine up, current weights) and to its first answer;
  - the time the scale event cost: over the steps from the request until the first steady two-worker step, the
    seconds each took beyond a one-worker step, also in steps (the issue's bound: at most one step).
On one machine both "nodes" share its cores: each engine is bound to cores of its own (rollout.cpu_cores_per_worker =
CPUs per node), as on a node of its own, while the learner still uses every core. `--scale-only` runs this stage
alone and writes DIR/bench_scale.json. The cluster helper also serves the tests (tests/test_cluster.py).
"""

import contextlib
import json
import math
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from minazr.contracts.control import ask
from minazr.driver.config import save_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_two_node_cluster(cpus_per_node: int):
    """Head (resource head_node) + second node (resource second_node), `cpus_per_node` CPUs each, token auth on.
    Yields (dashboard URL, GCS address, environment for clients)."""
    ray_cli = str(Path(sys.executable).with_name("ray"))
    port, dash = _free_port(), _free_port()
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay under 108 bytes
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    env.pop("RAY_ADDRESS", None)
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus_per_node), "--num-gpus", "0",
              "--disable-usage-stats"]
    head = [ray_cli, "start", "--head", "--port", str(port), "--dashboard-port", str(dash), "--include-dashboard",
            "true", "--resources", '{"head_node": 1}', "--temp-dir", temp_dir, *common]
    second = [ray_cli, "start", "--address", f"127.0.0.1:{port}", "--resources", '{"second_node": 1}', *common]
    try:
        for cmd in (head, second):
            res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
            if res.returncode != 0:
                raise RuntimeError(f"`{' '.join(cmd[:3])}` failed: {res.stderr[-2000:]}")
        yield f"http://127.0.0.1:{dash}", f"127.0.0.1:{port}", env
    finally:
        subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _lines(path: Path) -> list[dict]:
    text = path.read_text() if path.is_file() else ""
    return [json.loads(ln) for ln in text.splitlines(keepends=True) if ln.endswith("\n")]


class ScaledRun:
    """A `minazr train` subprocess on a cluster, and what its run directory says so far."""

    def __init__(self, cfg, run_dir: Path, steps: int, address: str, env: dict, cores: int, overrides=()):
        self.run_dir = run_dir
        shutil.rmtree(run_dir, ignore_errors=True)
        config = save_config(cfg, run_dir.with_name(run_dir.name + "-config"))
        self.log = run_dir.with_name(run_dir.name + ".log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "minazr", "train", "--config", str(config), f"run.out_dir={run_dir}",
             f"train.steps={steps}", f"train.ray_address={address}", "rollout.num_workers=1", "eval.every=0",
             "train.checkpoint_every=0", "train.tensorboard=false",
             # both "nodes" share this machine's cores: each engine gets cores of its own, as on separate nodes
             f"rollout.cpu_cores_per_worker={cores}", *overrides],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def metrics(self) -> list[dict]:
        return _lines(self.run_dir / "metrics.jsonl")

    def events(self) -> list[dict]:
        return _lines(self.run_dir / "scale_events.jsonl")

    def wait(self, predicate, what: str, timeout_s: float = 1800.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if self.proc.poll() is not None:
                raise RuntimeError(f"the run ended (exit code {self.proc.returncode}) before {what}; its log: "
                                   f"{self.log.name}")
            time.sleep(0.5)
        raise RuntimeError(f"timed out waiting for {what}; the run's log: {self.log.name}")

    def finish(self, timeout_s: float = 1800.0) -> None:
        try:
            if self.proc.wait(timeout=timeout_s) != 0:
                raise RuntimeError(f"the run failed (exit code {self.proc.returncode}); its log: {self.log.name}")
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, 9)
            self.log.close()


def _steady(metrics: list[dict], workers: int) -> list[dict]:
    return [m for m in metrics if m["rollout/workers"] == workers and m["rollout/reproducible"] == 1]


def _phase(steps: list[dict]) -> dict:
    rollout = sum(m["time/rollout"] for m in steps)
    return {"steps": [m["step"] for m in steps], "step_s": sum(m["time/step"] for m in steps) / len(steps),
            "rollout_s": rollout / len(steps),
            "gen_tokens_per_s": sum(m["gen/completion_tokens"] for m in steps) / max(rollout, 1e-9)}


def measure_scale(cfg, steps: int, out_dir: Path, overrides=()) -> dict:
    """1 -> 2 -> 1 workers on a local two-node cluster (see the module docstring); the report."""
    cpus = max(1, math.ceil(cfg.rollout.num_cpus))  # each node holds exactly one worker
    run_dir = Path(out_dir) / "scale"
    with local_two_node_cluster(cpus) as (_, address, env):
        run = ScaledRun(cfg, run_dir, 3 * steps + 6, address, env, cpus, overrides)
        try:
            run.wait(lambda: len(run.metrics()) >= 1 + steps, f"{1 + steps} steps with one worker")
            asked = time.time()
            up = ask(run_dir, 2, cfg.rollout.scale_timeout_s + 60)
            if not up.ok:
                raise RuntimeError(f"the cluster refused a second worker: {up.message}")
            run.wait(lambda: len(_steady(run.metrics(), 2)) >= steps, f"{steps} steps with two workers")
            down = ask(run_dir, 1, cfg.rollout.scale_timeout_s + 60)
        finally:
            run.finish()
    return scale_report(run_dir, steps, asked, [up.message, down.message], cpus)


def scale_report(run_dir: Path, steps: int, asked: float, replies: list[str], cpus: int) -> dict:
    """The report of a finished 1 -> 2 -> 1 run: `steps` steady steps a phase after the warm-up step, the second
    worker asked for at time `asked` (the answers to both requests: `replies`)."""
    metrics, events = _lines(run_dir / "metrics.jsonl"), _lines(run_dir / "scale_events.jsonl")
    before = [m for m in metrics[1:1 + steps]]
    after = _steady(metrics, 2)[:steps]
    first_two = after[0]["step"]
    during = [m for m in metrics if before[-1]["step"] < m["step"] < first_two]
    base = _phase(before)
    lost = sum(max(0.0, m["time/step"] - base["step_s"]) for m in during)
    when = {e["event"]: e for e in events if e["worker"] == 1}
    cluster = json.loads((run_dir / "cluster.json").read_text())
    return {
        "steps_per_phase": steps, "one_worker": base, "two_workers": _phase(after),
        "transition_steps": [m["step"] for m in during],
        "request_to_serving_s": when["serving"]["time"] - asked,
        "request_to_first_answer_s": when["first_answer"]["time"] - asked,
        "lost_s": lost, "lost_steps": lost / base["step_s"],
        "joiner_node_differs": when["serving"].get("node_id") not in (None, cluster["workers"][0]["node_id"]),
        "replies": replies, "run_dir": str(run_dir), "nodes": 2, "cpus_per_node": cpus,
        "speedup_step": base["step_s"] / _phase(after)["step_s"],
    }


def scale_markdown(r: dict) -> str:
    one, two = r["one_worker"], r["two_workers"]
    return "\n".join([
        "| scaling a running loop (two-node cluster) | step s | in-loop gen tok/s |", "| --- | --- | --- |",
        f"| one worker, steps {one['steps'][0]}-{one['steps'][-1]} | {one['step_s']:.1f} | "
        f"{one['gen_tokens_per_s']:.0f} |",
        f"| two workers, steps {two['steps'][0]}-{two['steps'][-1]} | {two['step_s']:.1f} | "
        f"{two['gen_tokens_per_s']:.0f} |", "",
        f"request -> joiner serving {r['request_to_serving_s']:.1f} s, -> its first answer "
        f"{r['request_to_first_answer_s']:.1f} s; the scale event cost {r['lost_s']:.1f} s over steps "
        f"{r['transition_steps']} ({r['lost_steps']:.2f} of a one-worker step); joiner on the other node: "
        f"{r['joiner_node_differs']}"])


def run_scale_only(cfg, steps: int, out: str) -> dict:
    """`minazr bench --scale-only`: this stage alone; DIR/bench_scale.json and the table."""
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"model": cfg.model.name, "device": f"cpu ({os.cpu_count()} cores)" if cfg.rollout.num_gpus == 0
              else "cuda", "scale": measure_scale(cfg, steps, out_dir)}
    (out_dir / "bench_scale.json").write_text(json.dumps(report, indent=2))
    print(scale_markdown(report["scale"]))
    return report
