"""`minazr train`: Absolute Zero self-play with vLLM rollout workers and a learner, as Ray actors.

    minazr train --config configs/default.yaml [section.key=value ...]
    minazr train --resume runs/latest

The driver joins a running Ray cluster if there is one, else starts a local one; starts `rollout.num_workers`
RolloutWorkers (one vLLM engine each) and one Learner; seeds the task buffers; then per step runs
propose -> validate -> Monte-Carlo solve -> solve -> rewards -> advantages (minazr/selfplay/step.py, with generation
spread over all workers), hands the samples to the learner, and pushes the new weights to every worker over ZMQ
(minazr/driver/pipeline.py bounds how stale trained samples may be). Metrics go to RUN_DIR/metrics.jsonl and TensorBoard,
samples to RUN_DIR/samples.jsonl, checkpoints to RUN_DIR/checkpoints/. With eval.every > 0 a small fixed evaluation,
the canary (minazr/driver/canary.py), runs before the first step and every eval.every steps, and its stop rule
(eval.canary_stop_items) may end the run early, cleanly, with a checkpoint.
"""

import dataclasses
import json
import logging
import random
import sys
import time
from pathlib import Path

from tqdm import tqdm

from minazr.contracts.dtypes import choose_dtypes
from minazr.driver import canary, checkpoint
from minazr.selfplay.advantages import RunningBaseline
from minazr.selfplay.buffer import Buffers
from minazr.driver.config import Config, save_config, to_dict
from minazr.eval.evaluate import evaluate, load_benchmarks, write_reports
from minazr.sandbox.executor import from_config as executor_from_config
from minazr.driver.metrics import MetricsSink, truncate_after
from minazr.driver.models import resolve_model
from minazr.driver.pipeline import Pipeline
from minazr.driver.report import explain_run
from minazr.driver.scaling import ScaleListener
from minazr.driver.ray_session import TrainError, check_reachable, connect_ray, remote_call
from minazr.selfplay.prompts import Renderer
from minazr.selfplay.rewards import RewardScheme
from minazr.selfplay.budget import PromptBudget
from minazr.selfplay.step import Limits, fill_buffers, seed_buffers, selfplay_step
from minazr.selfplay.tasks import tasks_from_config

log = logging.getLogger(__name__)


def check_sampling(cfg: Config) -> None:
    """Sampling the learner can reproduce: it recomputes log-probs at the sampling temperature, and has no way to
    reproduce nucleus sampling's truncated distribution, so the importance ratio would be wrong with top_p < 1."""
    if cfg.selfplay.top_p < 1.0:
        raise TrainError(f"selfplay.top_p={cfg.selfplay.top_p}: training needs top_p 1.0 (the learner cannot "
                         "reproduce nucleus sampling's log-probs, so the importance ratio would be wrong)")
    if cfg.selfplay.temperature <= 0.0:
        raise TrainError("selfplay.temperature=0: training samples at a temperature > 0 (greedy decoding has no "
                         "log-probs to learn from)")


def check_canary(cfg: Config) -> None:
    """A stop rule that watches a benchmark the canary does not run is a mistake to report now, not to discover
    after the run went bad. With no canaries at all (eval.every=0, e.g. a quick try of an experiment's config) the
    rule is off, and the run says so in one line."""
    if cfg.eval.canary_stop_items and not cfg.eval.every:
        print("minazr train: eval.every=0: no canaries, so the stop rule (eval.canary_stop_items="
              f"{cfg.eval.canary_stop_items}) is off", file=sys.stderr, flush=True)
        return
    if cfg.eval.canary_stop_items and canary.STOP_BENCHMARK not in cfg.eval.canary_benchmarks:
        raise TrainError(f"eval.canary_stop_items watches the {canary.STOP_BENCHMARK} canary: add "
                         f"{canary.STOP_BENCHMARK} to eval.canary_benchmarks")


def run_training(cfg: Config, resume: str | None = None, on_step=None) -> Path:
    """Train (or resume) a run; `on_step(step, StepResult)` sees each step's result (minazr bench uses it)."""
    check_sampling(cfg)
    check_canary(cfg)
    check_reachable(cfg.train)  # an unreachable cluster fails now, not after the model and tokenizer load
    run_dir = Path(resume or cfg.run.out_dir)
    ckpt = checkpoint.latest(run_dir) if resume else None
    if resume and ckpt is None:
        raise TrainError(f"{run_dir}: no complete checkpoint to resume from")
    if ckpt:
        try:
            checkpoint.verify(ckpt)
            start_step, version, rng = checkpoint.load_driver_state(ckpt)
        except ValueError as e:
            raise TrainError(f"cannot resume: {e}") from None
        model_path, optimizer_state = ckpt / "model", str(ckpt / "learner_state.pt")
    else:
        start_step, version, rng = 0, 0, random.Random(cfg.run.seed)
        model_path, optimizer_state = resolve_model(cfg.model.name), None
    # steps after the checkpoint are redone; a fresh run keeps nothing, the canary before training included
    keep_through = start_step - 1 if ckpt else canary.BASELINE_STEP - 1
    for log_file in ("metrics.jsonl", "samples.jsonl"):
        dropped = truncate_after(run_dir / log_file, keep_through)
        if dropped and not ckpt:
            print(f"minazr train: {run_dir / log_file} held {dropped} lines of an earlier run without a "
                  "checkpoint; starting it anew (use --resume to continue a run)", flush=True)
    dropped = canary.drop_after(run_dir, keep_through)
    if dropped and not ckpt:
        print(f"minazr train: removed {len(dropped)} canary folders of an earlier run from {run_dir / 'eval'}",
              flush=True)
    dtypes = choose_dtypes(cfg.rollout, cfg.learner)
    print(f"minazr train: {dtypes.line}", flush=True)
    for warning in dtypes.warnings:
        print(f"minazr train: warning: {warning}", file=sys.stderr, flush=True)
    # config.yaml keeps `auto` (a resume on another CPU decides again) and says what it meant here
    save_config(cfg, run_dir, notes=[f"{dtypes.line} (minazr train, {time.strftime('%Y-%m-%d %H:%M')})"])
    # the engines and the learner get the decided dtypes: one choice, made on the driver's node, for every actor
    cfg = dataclasses.replace(cfg, rollout=dataclasses.replace(cfg.rollout, dtype=dtypes.engine),
                              learner=dataclasses.replace(cfg.learner, autocast_bf16=dtypes.autocast))
    evals = load_benchmarks(cfg.eval.canary_benchmarks, cfg.eval.data_dir or None,
                            cfg.eval.canary_items or cfg.eval.limit or None) \
        if cfg.eval.every else None  # a bad data file fails now, not hours into the run

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    render = Renderer.from_config(cfg.selfplay, tokenizer)
    tasks = tasks_from_config(cfg.selfplay)
    sink = MetricsSink(run_dir, cfg.train.tensorboard, cfg.train.wandb, to_dict(cfg))
    cluster = executor = listener = None
    try:
        cluster = _Cluster(cfg, model_path, optimizer_state, version, run_dir)
        listener = ScaleListener(run_dir, cluster.pool, tqdm.write,  # `minazr scale RUN_DIR --workers N`
                                 cfg.rollout.scale_timeout_s + 60).start()
        executor = executor_from_config(cfg.executor)
        buffers = Buffers.empty(tasks, cfg.buffer.cap, cfg.buffer.retire_seed_after)
        budget = PromptBudget.from_config(cfg, render, tasks, tokenizer)
        guards = validation_guards(cfg, budget)
        if ckpt:
            buffers.load(ckpt / "buffers")
            dropped = budget.drop_misfits(buffers)
            if dropped:
                log.warning("resume: dropped buffer entries whose prompts no longer fit max_model_len %d: %s",
                            cfg.rollout.max_model_len, dropped)
        else:
            _seed(cluster.pool, buffers, tasks, executor, cfg, render, rng, guards)
        _loop(cfg, run_dir, start_step, cluster, buffers, tasks, executor, render, rng, sink, tokenizer, evals,
              on_step, guards)
    finally:
        if listener is not None:
            listener.close()
        if executor is not None:
            executor.close()
        sink.close()
        if cluster is not None:
            cluster.close()
    return run_dir


# ---------------------------------------------------------------- the loop


def validation_guards(cfg, budget: PromptBudget) -> dict:
    """selfplay_step's keywords that bound a proposal's validation (`limits`) and its prompts (`fits`)."""
    return {"limits": Limits(cfg.executor.probe_timeout_s, cfg.executor.validation_budget_s),
            "fits": budget.reason}


def _loop(cfg, run_dir, start_step, cluster, buffers, tasks, executor, render, rng, sink, tokenizer, evals,
          on_step=None, guards=None) -> None:
    scheme = RewardScheme.from_config(cfg.rewards)
    baseline = _running_baseline(cfg, run_dir, start_step)
    pipe = Pipeline(cluster.learner_handle(), cluster.pool_handle(), cfg.train.max_staleness, cluster.version,
                    cfg.advantages.weighting)
    bar = tqdm(range(start_step, cfg.train.steps), desc="train", unit="step", initial=start_step,
               total=cfg.train.steps, dynamic_ncols=True)

    def finish(done):
        for step, metrics in done:
            metrics["time/step"] = time.perf_counter() - metrics.pop("_t0")
            sink.log(metrics, step)
            bar.write(_summary(step, metrics))

    if evals:
        _canary_before_training(cfg, run_dir, start_step, cluster.pool, executor, render, evals, sink, bar.write)
    stopped = None
    for step in bar:
        finish(pipe.before_generate())
        t0 = time.perf_counter()
        result = selfplay_step(cluster.pool, buffers, tasks, executor, cfg.selfplay, scheme, render, rng, step,
                               cfg.executor.timeout_s, cfg.advantages.estimator, cfg.advantages.weighting,
                               on_phase=lambda phase: bar.set_postfix_str(phase),
                               confirm_runs=cfg.executor.confirm_runs, baseline=baseline, **(guards or {}))
        if on_step is not None:
            on_step(step, result)
        if cfg.train.sample_table_every and step % cfg.train.sample_table_every == 0:
            _sample_table(run_dir, step, result.samples, bar.write)
        bar.set_postfix_str("learn")
        pipe.submit(step, result.samples, {**result.metrics, **_pool_metrics(run_dir, step, cluster.pool),
                                           "_t0": t0})
        last = step + 1 == cfg.train.steps
        if evals and ((step + 1) % cfg.eval.every == 0 or last):
            bar.set_postfix_str("eval")
            done = pipe.drain()  # evaluate the weights this step's update produced, now served by every worker
            for s, metrics in done:
                if s == step:
                    metrics.update(_evaluate(cfg, run_dir, step, cluster.pool, executor, render, evals, bar.write))
                    stopped = _stop_rule(cfg, run_dir, step, metrics, bar.write)
            finish(done)
        if stopped or last or (cfg.train.checkpoint_every and (step + 1) % cfg.train.checkpoint_every == 0):
            bar.set_postfix_str("checkpoint")
            finish(pipe.drain())
            _save(run_dir, step + 1, cluster, buffers, rng, tokenizer, cfg.train.keep_checkpoints, pipe.submitted,
                  baseline)
        if stopped:
            break
    finish(pipe.drain())
    bar.close()
    tb = "tb/ (TensorBoard), " if (run_dir / "tb").is_dir() else ""
    ckpt = (checkpoint.latest(run_dir) or Path("-")).name
    print(f"minazr train: {'stopped early' if stopped else 'done'}. Run directory {run_dir}: metrics.jsonl, "
          f"samples.jsonl, {tb}checkpoints/{ckpt} (HF model in model/)")
    try:
        print(explain_run(run_dir), flush=True)
    except (OSError, ValueError, KeyError) as e:  # the run is done and saved: a summary that fails must not hide it
        log.warning("could not summarise the run: %s: %s", type(e).__name__, e)
    if stopped:  # last, where the user looks: why the run ended and how to go on anyway
        print(f"minazr train: {stopped} Checkpoint saved: {run_dir / 'checkpoints' / ckpt}. If you think the run "
              f"should go on, continue it without the rule: minazr train --resume {run_dir} eval.canary_stop_items=0",
              flush=True)


def _pool_metrics(run_dir: Path, step: int, pool) -> dict:
    """The rollout side since the last step: workers serving now, the requested count, restarts so far, requests
    taken and generations returned (always equal: a lost or doubled sample would show here), and the joins and
    leaves (`minazr scale`), each also a line in RUN_DIR/scale_events.jsonl. A step with no join or leave is as
    reproducible as with a fixed count (rollout/reproducible 1); one during which the set of workers changed cut
    its requests differently (0: reproducibility across it is not promised)."""
    events = pool.take_events()
    changes = [e for e in events if e["event"] != "first_answer"]  # a joiner's first answer changes nothing
    asked, answered = pool.take_counts()
    if events:
        with (run_dir / "scale_events.jsonl").open("a") as fh:
            for e in events:
                fh.write(json.dumps({"step": step, **e}) + "\n")
    return {"rollout/workers": len(pool.serving()), "rollout/workers_target": pool.target,
            "rollout/restarts": pool.restarts, "rollout/scale_events": len(changes),
            "rollout/reproducible": int(not changes), "rollout/requests": asked, "rollout/answered": answered}


def _evaluate(cfg, run_dir, step, pool, executor, render, evals, write) -> dict:
    """The canary on the served weights (step canary.BASELINE_STEP: before training): eval/<benchmark> accuracy,
    format rate and items gained minus lost against the baseline; per-item results in canary.canary_dir."""
    t0 = time.perf_counter()
    when = "before training" if step == canary.BASELINE_STEP else f"after step {step}"
    reports = evaluate(pool, executor, render, evals, cfg.eval.max_tokens, cfg.eval.chunk, cfg.executor.timeout_s)
    summary = write_reports(canary.canary_dir(run_dir, step), reports, f"{run_dir} {when}")
    metrics = canary.canary_metrics(summary, {name: r.rows for name, r in reports.items()},
                                    canary.baseline_rows(run_dir, summary))

    def cell(name, s):
        net = metrics.get(f"eval/net_vs_base/{name}")
        vs = f", net {net:+d} items vs before training" if net is not None and step != canary.BASELINE_STEP else ""
        return f"{name} {100 * s['accuracy']:.1f}% (n={s['n']}{vs})"

    write(f"canary {when}: " + " | ".join(cell(name, s) for name, s in summary.items()))
    return {**metrics, "time/eval": time.perf_counter() - t0}


def _canary_before_training(cfg, run_dir, start_step, pool, executor, render, evals, sink, write) -> None:
    """The canary before the first training step, once per run: a resumed run keeps the one on disk (the served
    weights are no longer the initial ones, so it could not be redone)."""
    if start_step == 0:
        sink.log(_evaluate(cfg, run_dir, canary.BASELINE_STEP, pool, executor, render, evals, write),
                 canary.BASELINE_STEP)
    elif not canary.baseline_rows(run_dir, evals):
        write(f"warning: {canary.canary_dir(run_dir, canary.BASELINE_STEP)} holds no canary before training (the "
              "run started with eval.every=0): canaries run, without eval/net_vs_base and the stop rule")


def _stop_rule(cfg, run_dir, step, metrics, write) -> str | None:
    """Apply eval.canary_stop_items after the canary of `step` (already on disk); the reason to stop, or None."""
    stop_items = cfg.eval.canary_stop_items
    if not stop_items:
        return None
    nets = canary.history(run_dir, canary.STOP_BENCHMARK)
    stop = canary.should_stop([net for _, net in nets], stop_items)
    metrics["eval/canary_stop"] = int(stop)
    if not stop:
        return None
    (s1, n1), (s2, n2) = nets[-2:]
    reason = (f"the canary stop rule ended the run after step {step}: the {canary.STOP_BENCHMARK} canary lost "
              f"{-n1} items net after step {s1} and {-n2} after step {s2} against the canary before training "
              f"(eval.canary_stop_items={stop_items}: items right before training and wrong now, minus the "
              "reverse, on two consecutive canaries).")
    write(f"minazr train: {reason}")
    return reason


def _seed(pool, buffers, tasks, executor, cfg, render, rng, guards=None) -> None:
    seed_buffers(buffers, tasks, executor, cfg.executor.timeout_s)
    with tqdm(total=cfg.buffer.seed_max_rounds, desc="seeding buffers", unit="round", dynamic_ncols=True) as bar:
        def on_round(_, sizes):
            bar.update(1)
            bar.set_postfix_str(" ".join(f"{k}={v}" for k, v in sizes.items()))

        rounds = fill_buffers(pool, buffers, tasks, executor, cfg.selfplay, render, rng, cfg.buffer.seed_size,
                              cfg.buffer.seed_max_rounds, cfg.executor.timeout_s, on_round,
                              confirm_runs=cfg.executor.confirm_runs, **(guards or {}))
    short = {k: v for k, v in buffers.sizes().items() if v < cfg.buffer.seed_size}
    if short:
        log.warning("seeding stopped after %d rounds with buffers below %d: %s", rounds, cfg.buffer.seed_size, short)


BASELINE_FILE = "running_baseline.json"  # in a checkpoint: the proposer's running baseline ('prompt+running')


def _running_baseline(cfg, run_dir, start_step) -> RunningBaseline | None:
    """The proposer's running baseline ('prompt+running'), as the checkpoint the run resumes from left it."""
    if cfg.advantages.estimator != "prompt+running":
        return None
    baseline = RunningBaseline(cfg.advantages.running_decay)
    ckpt = checkpoint.latest(run_dir) if start_step else None
    if ckpt is not None and (ckpt / BASELINE_FILE).is_file():
        baseline.load_state_dict(json.loads((ckpt / BASELINE_FILE).read_text()))
    return baseline


def _save(run_dir, next_step, cluster, buffers, rng, tokenizer, keep, version, baseline=None) -> None:
    tmp = checkpoint.begin(run_dir, next_step)
    cluster.save_learner(tmp)
    tokenizer.save_pretrained(tmp / "model")  # so the checkpoint loads on its own in transformers and vLLM
    buffers.save(tmp / "buffers")
    if baseline is not None:
        (tmp / BASELINE_FILE).write_text(json.dumps(baseline.state_dict()))
    checkpoint.save_driver_state(tmp, next_step, version, rng)
    checkpoint.commit(run_dir, tmp, next_step, keep)


def _summary(step: int, m: dict) -> str:
    tasks = sorted({k.rsplit("/", 1)[1] for k in m if k.startswith("solve/accuracy/")})
    acc = " ".join(f"{t[:3]}={m[f'solve/accuracy/{t}']:.2f}" for t in tasks)
    valid = " ".join(f"{t[:3]}={m.get(f'propose/valid_rate/{t}', 0):.2f}" for t in tasks)
    think = " ".join(f"{t[:3]}={m.get(f'solve/think_rate/{t}', 0):.2f}" for t in tasks)
    copies = sum(m.get(f"propose/copy_rate/{t}", 0) for t in tasks) / max(1, len(tasks))
    return (f"step {step}: solve acc {acc} | think {think} | valid proposals {valid} (copies {copies:.2f}) | "
            f"{m.get('gen/tokens_per_s', 0):.0f} tok/s | "
            f"step {m.get('time/step', 0):.0f}s (sync {m.get('time/weight_sync', 0):.1f}s) | "
            f"version {m.get('version', 0)} lag {m.get('version_lag/max', 0)}")


def _sample_table(run_dir: Path, step: int, samples, write) -> None:
    with (run_dir / "samples.jsonl").open("a") as fh:
        for s in samples:
            fh.write(json.dumps({"step": step, "task": s.task, "role": s.role, "reward": s.reward,
                                 "advantage": s.advantage, "outcome": s.outcome, "version": s.version, "worker": s.worker,
                                 "finish_reason": s.finish_reason, "prompt": s.prompt,
                                 "completion": s.completion}) + "\n")
    rows = [f"  {'role':7} {'task':9} {'reward':>6}  {'outcome':32} completion"]
    seen = set()
    for s in samples:  # one row per task x role x outcome kind keeps the table short
        key = (s.role, s.task, s.outcome.split(":")[0])
        if key in seen:
            continue
        seen.add(key)
        text = " ".join(s.completion.split())[:60]
        rows.append(f"  {s.role:7} {s.task:9} {s.reward:6.2f}  {s.outcome[:32]:32} {text}")
    write(f"samples of step {step} (all in samples.jsonl):\n" + "\n".join(rows))


# ---------------------------------------------------------------- Ray side


class _Cluster:
    """Ray, the learner actor and the rollout workers, started in that order and closed together.

    Every remote call has a deadline (rollout.timeout_s); a hang, a dead learner or workers that cannot be placed
    become a TrainError with one line for the user (rollout worker deaths are handled by the pool itself).
    """

    def __init__(self, cfg: Config, model_path, optimizer_state, version: int, run_dir: Path):
        import ray

        from learner.actor import start_learner
        from rollout.worker import start_pool

        self.ray = ray
        self.timeout_s = cfg.rollout.timeout_s
        self.dtypes = {"engine": cfg.rollout.dtype, "learner_autocast_bf16": cfg.learner.autocast_bf16}
        self.learner, self.pool = None, None
        connect_ray(cfg.train)
        try:
            # the learner loads its model while the engines start: actor creation returns at once
            self.learner = start_learner(model_path, cfg.learner, cfg.rollout, cfg.run.seed, optimizer_state)
            self.pool = start_pool(model_path, cfg.rollout, cfg.run.seed)
            self.address = remote_call(ray, self.learner.address.remote(), self.timeout_s, "start the learner",
                                       resumable=False)
            remote_call(ray, self.learner.set_version.remote(version), self.timeout_s, "set the learner's version")
            remote_call(ray, self.learner.publish.remote(), self.timeout_s, "publish weights")
            self.pool.load_weights(self.address, version)  # every worker serves exactly the learner's weights
            self.version = version
            self.describe(run_dir)
        except BaseException:
            self.close()
            raise

    def describe(self, run_dir: Path) -> dict:
        """Where everything runs (RUN_DIR/cluster.json): node ids and addresses of the learner and each worker."""
        layout = {"learner": {"address": self.address,
                              "node_id": remote_call(self.ray, self.learner.node_id.remote(), self.timeout_s,
                                                     "describe the learner"),
                              "pid": remote_call(self.ray, self.learner.pid.remote(), self.timeout_s,
                                                 "describe the learner")},
                  "workers": self.pool.info(), "nodes": len(self.ray.nodes()), "dtypes": self.dtypes}
        (run_dir / "cluster.json").write_text(json.dumps(layout, indent=2) + "\n")
        return layout

    def learner_handle(self):
        return _LearnerHandle(self.ray, self.learner, self.timeout_s)

    def pool_handle(self):
        return _PoolHandle(self.pool, self.address)

    def save_learner(self, directory: Path) -> None:
        remote_call(self.ray, self.learner.save.remote(str(directory)), self.timeout_s, "save a checkpoint")

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        if self.learner is not None:
            try:
                self.ray.kill(self.learner)
            except Exception:  # already gone: nothing to close
                pass


class _LearnerHandle:
    def __init__(self, ray, actor, timeout_s):
        self.ray, self.actor, self.timeout_s = ray, actor, timeout_s

    def submit(self, batch, version):
        return _Result(self.ray, self.actor.train_step.remote(batch, version), self.timeout_s)


class _Result:
    def __init__(self, ray, ref, timeout_s):
        self.ray, self.ref, self.timeout_s = ray, ref, timeout_s

    def result(self) -> dict:
        return remote_call(self.ray, self.ref, self.timeout_s, "run a learner update")


class _PoolHandle:
    def __init__(self, pool, address):
        self.pool, self.address = pool, address

    def load_weights(self, version):
        return self.pool.load_weights(self.address, version)
