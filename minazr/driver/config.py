"""One config for a run: a small dataclass per component, loaded from YAML, overridden from the command line.

    cfg = load_config("configs/default.yaml", ["learner.lr=1e-6", "executor.workers=4"])

Every field carries its help text and its allowed range in the dataclass metadata; the loader checks types and
ranges once, at load time, and raises ConfigError with one line naming the key and the problem. The README's
config reference is generated from the same metadata (`minazr config --docs`).
"""

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml


class ConfigError(ValueError):
    """A config file or override is wrong; the message is one line naming the key."""


def param(default, help: str, *, min=None, max=None, choices=None):
    """A config field: default, help text for the docs, and the checks applied at load time."""
    meta = {"help": help, "min": min, "max": max, "choices": choices}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    name: str = param("smollm2-135m-instruct",
                      "Policy model: the embedded default's name, a local Hugging Face directory, or a hub id "
                      "(owner/name, for users who are online).")


@dataclass
class RolloutConfig:
    num_workers: int = param(1, "Rollout workers (Ray actors), each owning one vLLM engine.", min=1)
    dtype: str = param("bfloat16", "Engine weight dtype (the learner publishes in this dtype).",
                       choices=("bfloat16", "float16", "float32"))
    max_model_len: int = param(2048, "Longest prompt + completion an engine accepts, in tokens.", min=64)
    max_num_seqs: int = param(256, "Most sequences an engine batches at once (a throughput lever on CPU).", min=1)
    enforce_eager: bool = param(False, "Skip vLLM's torch.compile: faster start (no ~80 s first compile, cached "
                                       "afterwards), ~20% slower generation on CPU.")
    chunked_prefill: bool = param(False, "Let vLLM split a long prefill across engine steps. Off by default on CPU: "
                                         "vLLM 0.32's CPU backend crashes (\"CPU Generator does not use offset\") "
                                         "when a seeded request (every training request is) is prefilled in parts.")
    kv_cache_gb: float = param(2.0, "KV-cache memory per engine, in GiB (CPU engines; GPU engines use "
                                    "gpu_memory_utilization).", min=0.1)
    cpu_cores_per_worker: int = param(0, "CPU cores each engine's threads are bound to; 0 splits the node's "
                                         "cores evenly among the workers. Worker i gets the i-th slice.", min=0)
    num_cpus: float = param(1.0, "Ray CPU resource each worker reserves (scheduling only).", min=0.0)
    num_gpus: float = param(0.0, "GPUs per worker; > 0 runs the engine on CUDA (install the `gpu` extra).",
                            min=0.0)
    gpu_memory_utilization: float = param(0.85, "Fraction of GPU memory a GPU engine may use.", min=0.05, max=1.0)
    weight_bucket_mb: float = param(64.0, "Size of the buckets weights travel in over ZMQ, in MiB.", min=1.0)
    timeout_s: float = param(1800.0, "Longest any remote call (a generate chunk, a weight load, a learner "
                                     "update) may take before the run stops with an error naming it.", min=1.0)
    placement: str = param("spread", "How rollout workers are placed on a cluster (a Ray placement group, one "
                                     "bundle of num_cpus/num_gpus per worker): spread (across nodes where "
                                     "possible), strict_spread (one per node), pack, strict_pack, or none (Ray's "
                                     "default scheduling).",
                           choices=("spread", "strict_spread", "pack", "strict_pack", "none"))
    chunks_per_worker: int = param(1, "With several workers, each generation phase is cut into this many chunks "
                                      "per worker, handed to whichever worker is free: with 2-4 a slow worker "
                                      "holds back at most one chunk, at the cost of smaller batches (2: -13% "
                                      "tokens/s with two equal CPU workers here). 1: one equal share each.",
                                   min=1)
    max_restarts: int = param(3, "Rollout workers that may die and be replaced during a run; a dead worker's "
                                 "unfinished requests are generated again elsewhere.", min=0)


@dataclass
class LearnerConfig:
    lr: float = param(1e-5, "AdamW learning rate (AZR uses 1e-6 on 3-14B models; the tiny CPU default moves "
                            "faster).", min=0.0, max=1.0)
    weight_decay: float = param(0.0, "AdamW weight decay.", min=0.0)
    clip_eps: float = param(0.2, "PPO clipping of the importance ratio (1 - eps, 1 + eps).", min=0.0)
    kl_coef: float = param(0.0, "Weight of the KL penalty to the frozen initial model (AZR: 0; the seed: 0.1, "
                                "see configs/seed.yaml).", min=0.0)
    grad_clip: float = param(1.0, "Gradient norm clipping; 0 turns it off.", min=0.0)
    micro_batch_tokens: int = param(2048, "Tokens (rows of prompt + completions, padded) per forward/backward "
                                          "micro-batch; gradients accumulate over the micro-batches of a step.",
                                    min=64)
    share_prompts: bool = param(True, "Pack the completions of one prompt into one row behind a single copy of "
                                      "the prompt (a block attention mask), so the decoder reads each prompt once "
                                      "per row instead of once per completion; same loss and gradients.")
    logits_chunk_tokens: int = param(2048, "Completion tokens per chunk of the vocabulary projection; chunks are "
                                           "recomputed in backward, so at most this many rows of fp32 logits live "
                                           "at once (152k-vocabulary models: ~1.2 GB per 2048); 0: one chunk.",
                                     min=0)
    autocast_bf16: bool = param(True, "Run forward/backward in bf16 autocast over fp32 master weights.")
    gradient_checkpointing: bool = param(False, "Recompute activations in backward to save memory.")
    freeze: list[str] = param([], "Parameters left untrained: names containing any of these strings (e.g. "
                                  "embed_tokens, lm_head: no gradients or optimizer state for the vocabulary "
                                  "matrices, 12 bytes per parameter saved).")
    threads: int = param(0, "torch threads of the learner on CPU; 0 uses every core.", min=0)
    num_cpus: float = param(0.0, "Ray CPU resource the learner reserves (0 on one small machine: it shares the "
                                 "cores with the engines, which idle while it trains).", min=0.0)
    num_gpus: float = param(0.0, "GPUs for the learner; > 0 trains on CUDA.", min=0.0)
    weight_shm: bool = param(True, "Rollout workers on the learner's machine read published weights from a "
                                   "shared-memory file (/dev/shm, about two copies of the model in the engine "
                                   "dtype) instead of over the socket; workers on other nodes always use the "
                                   "socket.")
    weight_port: int = param(0, "TCP port of the learner's ZMQ weight server, bound to the learner node's own "
                                "address; 0 picks a free port.", min=0, max=65535)


@dataclass
class TrainConfig:
    steps: int = param(10, "Self-play steps (each: propose, validate, solve, update, push weights).", min=0)
    max_staleness: int = param(0, "0: synchronous on-policy. k > 0: generation of the next steps overlaps the "
                                  "update, never training on samples more than k versions old.", min=0)
    checkpoint_every: int = param(5, "Save a checkpoint every N steps (and always at the end); 0: only at the end.",
                                  min=0)
    keep_checkpoints: int = param(2, "Checkpoints kept; older ones are deleted.", min=1)
    sample_table_every: int = param(1, "Print a table of proposals and solutions every N steps (and write them "
                                       "to samples.jsonl); 0: never.", min=0)
    tensorboard: bool = param(True, "Also write metrics as TensorBoard events under RUN_DIR/tb.")
    wandb: bool = param(False, "Also log to Weights & Biases (needs `pip install wandb` and a login).")
    ray_address: str = param("", "Ray cluster to join ('auto', or host:port); empty joins a local running "
                                 "cluster if there is one, else starts one.")
    worker_logs: bool = param(False, "Forward the output of rollout workers and the learner (vLLM and Ray logs) to "
                                     "this console; either way failures reach the driver as errors, and Ray keeps "
                                     "the logs under its session directory (/tmp/ray/session_latest/logs).")


@dataclass
class ExecutorConfig:
    workers: int = param(0, "Sandbox servers in the executor pool; 0 means two per CPU core (at least 2, since a "
                            "validation run needs two separate processes).", min=0, max=256)
    timeout_s: float = param(5.0, "Wall-clock limit for one program run, in seconds (the CPU-time rlimit follows "
                                  "it).", min=0.1, max=600.0)
    memory_mb: int = param(512, "Address-space limit (RLIMIT_AS) of a program, in MiB.", min=64, max=65536)
    max_output_chars: int = param(10_000, "Longest accepted literal text of a program's return value, in "
                                          "characters; longer outputs are rejected, never truncated.", min=16)
    determinism_runs: int = param(2, "Runs of each program (proposals and answer checks alike), in different "
                                     "processes with different hash seeds; all must return the same output, or "
                                     "there is no verdict. 1 turns the check off.", min=1, max=2)
    confirm_runs: int = param(2, "Extra runs, under hash seeds not used yet, of every output self-play would keep as "
                                 "a gold answer (a valid proposal's); any other output makes the proposal "
                                 "non-deterministic. Catches outputs that depend on the seed only sometimes. 0: off.",
                              min=0, max=2)
    grace_s: float = param(2.0, "Seconds a sandbox server may take beyond a program's timeout to answer; a later "
                                "server is retired and replaced, and its job fails as a sandbox failure.",
                           min=0.1, max=60.0)


@dataclass
class SelfPlayConfig:
    tasks: list[str] = param(["deduction", "abduction", "induction", "math"],
                             "Task types played each step: AZR's deduction, abduction, induction, and the seed's "
                             "verifiable math.", choices=("deduction", "abduction", "induction", "math"))
    propose_per_task: int = param(2, "Proposer prompts per task type per step.", min=0)
    n_propose: int = param(1, "Completions per proposer prompt.", min=1)
    n_mc: int = param(4, "Monte-Carlo solves of each valid proposal, for its learnability reward (AZR uses 8).",
                      min=1)
    solve_per_task: int = param(1, "Solver prompts per task type per step, sampled uniformly from its buffer.",
                                min=0)
    n_solve: int = param(4, "Completions per solver prompt (the GRPO group size).", min=1)
    k_references: int = param(3, "Buffer entries shown to a deduction/abduction/math proposer as references "
                                 "(AZR's K).", min=0)
    induction_inputs: int = param(6, "Distinct inputs an induction proposal needs, every one valid (AZR's N); half "
                                     "of the pairs are shown to the solver, half judge its program.", min=2)
    temperature: float = param(1.0, "Sampling temperature of every rollout.", min=0.0)
    top_p: float = param(1.0, "Nucleus sampling top-p of every rollout.", min=0.0, max=1.0)
    max_tokens: int = param(256, "Longest proposer completion, in tokens.", min=1)
    solve_max_tokens: int = param(0, "Longest solver completion (reasoning, then the answer), in tokens; 0: "
                                     "max_tokens. The truncation rate per task is in the metrics "
                                     "(solve/truncated/<task>): a cut-off answer scores as unparseable.", min=0)
    answer_format: str = param("think", "What a solver answer must look like: 'think' (AZR's strict "
                                        "<think>reasoning</think><answer>...</answer>, nothing around it) or 'answer' "
                                        "(any <answer> tag, reasoning optional). A format error scores "
                                        "rewards.solve_unparseable.", choices=("think", "answer"))
    fresh_solves: bool = param(True, "Solver prompts come first from this step's newly validated tasks (AZR's "
                                     "max_new), then from the buffers.")
    train_on_mc: bool = param(True, "Train on the Monte-Carlo solves of new tasks as solver samples (they are "
                                    "on-policy and already generated); solver prompts then come from older buffer "
                                    "entries.")
    prompt_template: str = param("chat", "How prompts are wrapped: 'chat' (the tokenizer's chat template, for "
                                         "instruct models) or 'r1' (AZR's raw template, for base models).",
                                 choices=("chat", "r1"))
    open_think: bool = param(True, "With the chat template, start the assistant's turn with <think> (as the r1 "
                                   "template does): the completion begins inside the reasoning. An instruct model "
                                   "that was never trained to write <think> (Qwen2.5-Coder-0.5B: 0 of 16 solver "
                                   "answers in a first step without it) otherwise fails the think format on every "
                                   "answer, and RL gets no signal.")
    streaming: bool = param(True, "Stream the step through the rollout engines: each proposal is validated and its "
                                  "Monte-Carlo solves queued as soon as it finishes, answers are judged as they "
                                  "finish, and new requests join the batch the engines are decoding. false: "
                                  "rounds of one generate call each (proposals and buffer solves, then "
                                  "Monte-Carlo solves). Both are deterministic for a given seed (--resume "
                                  "regenerates the same samples); they sample different batches, so not the same "
                                  "completions as each other.")
    stream_steps: int = param(8, "Engine steps (one token per running sequence) per streaming round; finished "
                                 "requests come back, and requests added since join, between rounds. Larger: "
                                 "fewer round trips, follow-ups queue longer.", min=1)


@dataclass
class BufferConfig:
    cap: int = param(4096, "Most entries per task buffer; the oldest is evicted past it.", min=1)
    seed_size: int = param(4, "Entries the model itself proposes into each buffer, by seeding rounds (propose and "
                              "validate, no training), before training starts.", min=1)
    retire_seed_after: int = param(4, "Once a buffer holds this many entries proposed by the model, its seed "
                                      "entries (AZR's identity triplet) are no longer shown as references, solved, "
                                      "or given to induction; 0: never.", min=0)
    seed_max_rounds: int = param(3, "Seeding rounds before training starts anyway.", min=0)


@dataclass
class RewardsConfig:
    preset: str = param("azr", "Reward scheme: 'azr' (paper), 'azr_code' (AZR's code: -0.5 for never/always "
                               "solved proposals), 'seed' (+10/-10, +10 for any valid proposal). Each value below "
                               "replaces the preset's when set.", choices=("azr", "azr_code", "seed"))
    solve_correct: float | None = param(None, "Solver reward for a correct answer (azr: 1).")
    solve_wrong: float | None = param(None, "Solver reward for a well-formed wrong answer (azr: -0.5).")
    solve_unparseable: float | None = param(None, "Solver reward when no answer can be read (azr: -1).")
    propose_invalid: float | None = param(None, "Proposer reward for an unparseable or invalid proposal (azr: -1).")
    propose_extreme: float | None = param(None, "Proposer reward when the Monte-Carlo solve rate is 0 or 1 "
                                                "(azr: 0, azr_code: -0.5).")
    propose_flat: float | None = param(None, "If set, every valid proposal gets this instead of learnability "
                                             "(seed: 10).")
    propose_duplicate: float | None = param(None, "Proposer reward for a valid proposal that copies a known task "
                                                  "(a reference or any buffer entry) (azr: -0.5, seed: -5).")


@dataclass
class AdvantagesConfig:
    estimator: str = param("trr++", "Advantage estimator: 'trr++' (AZR: whiten per task x role), 'grpo' (per "
                                    "prompt group), 'batch_mean' (the seed's: reward minus batch mean).",
                           choices=("trr++", "grpo", "batch_mean"))
    weighting: str = param("token", "Loss aggregation: 'token' (every token counts the same) or 'sequence' "
                                    "(every sample counts the same).", choices=("token", "sequence"))


@dataclass
class EvalConfig:
    benchmarks: list[str] = param(["gsm8k", "cruxeval-o", "cruxeval-i", "gsm8k-train", "cruxeval-o-train",
                                   "cruxeval-i-train"],
                                  "Benchmarks `minazr eval` runs (and `minazr train` when eval.every > 0). Plain "
                                  "names use standard prompts (CRUXEval's harness format, direct answer; GSM8K "
                                  "zero-shot chain of thought); -cot: CRUXEval's chain-of-thought variant; -train: "
                                  "the training solver prompt (in-format).",
                                  choices=("gsm8k", "cruxeval-o", "cruxeval-i", "cruxeval-o-cot", "cruxeval-i-cot",
                                           "gsm8k-train", "cruxeval-o-train", "cruxeval-i-train"))
    limit: int = param(0, "Items per benchmark, from the start of each file; 0 evaluates all (GSM8K 1319, "
                          "CRUXEval 800 each).", min=0)
    max_tokens: int = param(512, "Longest completion per item, in tokens (greedy decoding).", min=1)
    chunk: int = param(256, "Prompts sent to the rollout workers per generate call (progress is reported per "
                            "chunk; bigger chunks batch better).", min=1)
    every: int = param(0, "During `minazr train`, evaluate the current weights every N steps and at the end, "
                          "logging eval/<benchmark> metrics; 0: never (on CPU also set eval.limit).", min=0)
    data_dir: str = param("", "Folder with gsm8k_test.jsonl and cruxeval.jsonl; empty uses the copies shipped "
                              "in minazr/data.")


@dataclass
class RunConfig:
    out_dir: str = param("runs/latest", "Run directory: the resolved config, metrics and checkpoints go here.")
    seed: int = param(0, "Seed for every random choice the driver makes.", min=0)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    selfplay: SelfPlayConfig = field(default_factory=SelfPlayConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    rewards: RewardsConfig = field(default_factory=RewardsConfig)
    advantages: AdvantagesConfig = field(default_factory=AdvantagesConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)


# ---------------------------------------------------------------- loading


def load_config(path: str | Path | None = None, overrides: list[str] = (), base: Config | None = None) -> Config:
    """Read `path` (YAML; None for the defaults, or `base`), apply dotted `key=value` overrides, validate, return
    a Config."""
    raw: dict = to_dict(base) if base is not None else {}
    if path is not None:
        raw = _read_yaml(Path(path))
    for item in overrides:
        _apply_override(raw, item)
    return _build(Config, raw, prefix="")


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return data


def _apply_override(raw: dict, item: str) -> None:
    key, sep, text = item.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"{item}: overrides look like section.key=value")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{key}: {part} is not a section")
    node[leaf] = value


def _build(cls, data, prefix: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {_show(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (known: {', '.join(fields)})")
    kwargs = {}
    for name, value in data.items():
        f, key = fields[name], prefix + name
        if dataclasses.is_dataclass(f.type):
            kwargs[name] = _build(f.type, value, key + ".")
        else:
            kwargs[name] = _check(key, _coerce(key, f.type, value), f.metadata)
    return cls(**kwargs)


def _coerce(key: str, typ, value):
    """Check `value` against the annotation `typ`, accepting the forms YAML and the shell produce (1e-6 as text)."""
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        args = typing.get_args(typ)
        if value is None and type(None) in args:
            return None
        (typ,) = [a for a in args if a is not type(None)]
    if typing.get_origin(typ) is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {_show(value)}")
        (item,) = typing.get_args(typ)
        return [_coerce(f"{key}[{i}]", item, v) for i, v in enumerate(value)]
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {_show(value)}")
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {_show(value)}")
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {_show(value)}")
    if typ is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {_show(value)}")
    raise TypeError(f"{key}: unsupported config type {typ}")  # a bug in this file, not in the user's config


def _check(key: str, value, meta) -> object:
    if value is None:
        return value
    lo, hi, choices = meta.get("min"), meta.get("max"), meta.get("choices")
    if lo is not None and value < lo:
        raise ConfigError(f"{key}: {value} is below the minimum {lo}")
    if hi is not None and value > hi:
        raise ConfigError(f"{key}: {value} is above the maximum {hi}")
    for item in value if isinstance(value, list) else [value]:
        if choices is not None and item not in choices:
            raise ConfigError(f"{key}: {item!r} is not one of {', '.join(map(str, choices))}")
    return value


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------- writing and docs


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, run_dir: str | Path) -> Path:
    """Write the resolved config as `run_dir/config.yaml`; `load_config` reads it back to the same Config."""
    path = Path(run_dir) / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return path


def docs_markdown() -> str:
    """A markdown table of every config field: key, type, default, allowed range, help."""
    rows = ["| key | type | default | allowed | meaning |", "| --- | --- | --- | --- | --- |"]
    for section in dataclasses.fields(Config):
        for f in dataclasses.fields(section.type):
            m = f.metadata
            allowed = ", ".join(x for x in (
                f">= {m['min']}" if m.get("min") is not None else "",
                f"<= {m['max']}" if m.get("max") is not None else "",
                f"one of {', '.join(map(str, m['choices']))}" if m.get("choices") else "") if x)
            type_name = f.type.__name__ if isinstance(f.type, type) else str(f.type).replace(" | ", " or ")
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            default = "null" if default is None else default
            rows.append(f"| `{section.name}.{f.name}` | {type_name} | `{default}` | {allowed or 'any'} | "
                        f"{m['help']} |")
    return "\n".join(rows)
