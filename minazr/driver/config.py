"""One config for a run: a small pydantic dataclass per component, loaded from YAML, overridden from the command line.

    cfg = load_config("configs/default.yaml", ["learner.lr=1e-6", "executor.workers=4"])

Each field is declared once: `param(default, help, min=, max=)` (a pydantic Field) and a `Literal[...]` type where
only some values are allowed. pydantic validates every construction (YAML + overrides, `load_config(base=)`,
`dataclasses.replace`) against them: unknown keys are rejected, types are strict (no 1 for true, no "3" for 3)
except that a `Float` also takes an integer or numeric text (PyYAML reads 1e-5 as text). `load_config` turns the
validation error into a ConfigError of one line naming the dotted key. `minazr config --docs` (the reference page
docs/configuration.md) is generated from the same declarations. The sections are plain dataclasses otherwise:
attribute access, `replace`, `asdict`, copies and pickles (to Ray actors) work as before.
"""

import contextlib
import dataclasses
import types
from dataclasses import field
from pathlib import Path
from typing import Annotated, Literal, Union, get_args, get_origin

import yaml
from pydantic import BeforeValidator, ConfigDict, Field, Strict, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass


class ConfigError(ValueError):
    """A config file or override is wrong; the message is one line naming the key."""


def param(default, help: str, *, min=None, max=None):
    """A config field: default, help text for the docs, and the range checked at load time."""
    if isinstance(default, list):
        return Field(default_factory=lambda: list(default), description=help)
    return Field(default, description=help, ge=min, le=max)


def _number(value):
    """A float field takes an integer or numeric text as well (never a bool): the forms YAML and the shell produce."""
    if isinstance(value, str) or type(value) is int:
        with contextlib.suppress(ValueError, OverflowError):
            return float(value)
    return value


# strict: no 1 for true, no True, 3.0 or "3" for 3, no 3 for "3"
Int, Bool, Str = Annotated[int, Strict()], Annotated[bool, Strict()], Annotated[str, Strict()]
Float = Annotated[float, BeforeValidator(_number), Strict()]
_FORBID = ConfigDict(extra="forbid", allow_inf_nan=False)  # nan and inf are never a setting


@dataclass(config=_FORBID)
class ModelConfig:
    name: Str = param("smollm2-135m-instruct",
                      "Policy model: the embedded default's name, a local Hugging Face directory, or a hub id "
                      "(owner/name, for users who are online).")


@dataclass(config=_FORBID)
class RolloutConfig:
    num_workers: Int = param(1, "Rollout workers (Ray actors), each owning one vLLM engine.", min=1)
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = param(
        "auto", "Engine weight dtype (the learner publishes in this dtype). auto: bfloat16 on a GPU or a CPU with "
                "native bf16 (flags avx512_bf16 or amx_bf16), else float32 (emulated bf16 generates ~5x slower). "
                "The run logs its choice in one line and in config.yaml.")
    max_model_len: Int = param(2048, "Longest prompt + completion an engine accepts, in tokens.", min=64)
    max_num_seqs: Int = param(256, "Most sequences an engine batches at once (a throughput lever on CPU).", min=1)
    enforce_eager: Bool = param(True, "Skip vLLM's torch.compile: faster start (no ~80 s first compile, cached "
                                       "afterwards), ~20% slower generation on CPU.")
    chunked_prefill: Bool = param(False, "Let vLLM split a long prefill across engine steps. Off by default on CPU: "
                                         "vLLM 0.32's CPU backend crashes (\"CPU Generator does not use offset\") "
                                         "when a seeded request (every training request is) is prefilled in parts.")
    kv_cache_gb: Float = param(2.0, "KV-cache memory per engine, in GiB (CPU engines; GPU engines use "
                                    "gpu_memory_utilization).", min=0.1)
    cpu_cores_per_worker: Int = param(0, "CPU cores each engine's threads are bound to; 0 splits the node's "
                                         "cores evenly among the workers. Worker i gets the i-th slice.", min=0)
    num_cpus: Float = param(1.0, "Ray CPU resource each worker reserves (scheduling only).", min=0.0)
    num_gpus: Float = param(0.0, "GPUs per worker; > 0 runs the engine on CUDA (install the `gpu` extra).",
                            min=0.0)
    gpu_memory_utilization: Float = param(0.85, "Fraction of GPU memory a GPU engine may use.", min=0.05, max=1.0)
    weight_bucket_mb: Float = param(64.0, "Size of the buckets weights travel in over ZMQ, in MiB.", min=1.0)
    timeout_s: Float = param(1800.0, "Longest any remote call (a generate chunk, a weight load, a learner "
                                     "update) may take before the run stops with an error naming it.", min=1.0)
    placement: Literal["spread", "strict_spread", "pack", "strict_pack", "none"] = param(
        "spread", "How rollout workers are placed on a cluster (a Ray placement group, one bundle of "
                  "num_cpus/num_gpus per worker): spread (across nodes where possible), strict_spread (one per "
                  "node), pack, strict_pack, or none (Ray's default scheduling).")
    chunks_per_worker: Int = param(1, "With several workers, each generation phase is cut into this many chunks "
                                      "per worker, handed to whichever worker is free: with 2-4 a slow worker "
                                      "holds back at most one chunk, at the cost of smaller batches (2: -13% "
                                      "tokens/s with two equal CPU workers here). 1: one equal share each.",
                                   min=1)
    max_restarts: Int = param(3, "Rollout workers that may die and be replaced during a run; a dead worker's "
                                 "unfinished requests are generated again elsewhere.", min=0)
    scale_timeout_s: Float = param(60.0, "How long `minazr scale RUN_DIR --workers 2` waits for room for the new "
                                         "workers (on a cluster with an autoscaler: for nodes to come up) before it "
                                         "refuses the count; the run goes on meanwhile.", min=1.0)


@dataclass(config=_FORBID)
class LearnerConfig:
    lr: Float = param(5e-5, "AdamW learning rate (AZR uses 1e-6 on 3-14B models; the tiny CPU default learns "
                            "the answer format within 10 steps at 5e-5, not at 1e-5).", min=0.0, max=1.0)
    weight_decay: Float = param(0.0, "AdamW weight decay.", min=0.0)
    clip_eps: Float = param(0.2, "PPO clipping of the importance ratio (1 - eps, 1 + eps).", min=0.0)
    kl_coef: Float = param(0.0, "Weight of the KL penalty to the frozen initial model (AZR: 0; the seed: 0.1, "
                                "see configs/seed.yaml).", min=0.0)
    grad_clip: Float = param(1.0, "Gradient norm clipping; 0 turns it off.", min=0.0)
    micro_batch_tokens: Int = param(2048, "Tokens (rows of prompt + completions, padded) per forward/backward "
                                          "micro-batch; gradients accumulate over the micro-batches of a step.",
                                    min=64)
    share_prompts: Bool = param(True, "Pack the completions of one prompt into one row behind a single copy of "
                                      "the prompt (a block attention mask), so the decoder reads each prompt once "
                                      "per row instead of once per completion; same loss and gradients.")
    logits_chunk_tokens: Int = param(2048, "Completion tokens per chunk of the vocabulary projection; chunks are "
                                           "recomputed in backward, so at most this many rows of fp32 logits live "
                                           "at once (152k-vocabulary models: ~1.2 GB per 2048); 0: one chunk.",
                                     min=0)
    autocast_bf16: Union[Literal["auto"], Bool] = param(
        "auto", "Run forward/backward in bf16 autocast over fp32 master weights. auto: on a GPU or a CPU with "
                "native bf16, else fp32 compute (emulated bf16 autocast runs ~15x slower).")
    gradient_checkpointing: Bool = param(False, "Recompute activations in backward to save memory.")
    freeze: list[Str] = param([], "Parameters left untrained: names containing any of these strings (e.g. "
                                  "embed_tokens, lm_head: no gradients or optimizer state for the vocabulary "
                                  "matrices, 12 bytes per parameter saved).")
    threads: Int = param(0, "torch threads of the learner on CPU; 0 uses every core.", min=0)
    num_cpus: Float = param(0.0, "Ray CPU resource the learner reserves (0 on one small machine: it shares the "
                                 "cores with the engines, which idle while it trains).", min=0.0)
    num_gpus: Float = param(0.0, "GPUs for the learner; > 0 trains on CUDA.", min=0.0)
    weight_shm: Bool = param(True, "Rollout workers on the learner's machine read published weights from a "
                                   "shared-memory file (/dev/shm, about two copies of the model in the engine "
                                   "dtype) instead of over the socket; workers on other nodes always use the "
                                   "socket.")
    weight_port: Int = param(0, "TCP port of the learner's ZMQ weight server, bound to the learner node's own "
                                "address; 0 picks a free port.", min=0, max=65535)


@dataclass(config=_FORBID)
class TrainConfig:
    steps: Int = param(10, "Self-play steps (each: propose, validate, solve, update, push weights).", min=0)
    max_staleness: Int = param(0, "0: synchronous on-policy. k > 0: generation of the next steps overlaps the "
                                  "update, never training on samples more than k versions old.", min=0)
    checkpoint_every: Int = param(5, "Save a checkpoint every N steps (and always at the end); 0: only at the end.",
                                  min=0)
    keep_checkpoints: Int = param(2, "Checkpoints kept; older ones are deleted.", min=1)
    sample_table_every: Int = param(1, "Print a table of proposals and solutions every N steps (and write them "
                                       "to samples.jsonl); 0: never.", min=0)
    tensorboard: Bool = param(True, "Also write metrics as TensorBoard events under RUN_DIR/tb.")
    wandb: Bool = param(False, "Also log to Weights & Biases (needs `pip install wandb` and a login).")
    ray_address: Str = param("", "Ray cluster to join ('auto', or host:port); empty joins a local running "
                                 "cluster if there is one, else starts one.")
    worker_logs: Bool = param(False, "Forward the output of rollout workers and the learner (vLLM and Ray logs) to "
                                     "this console; either way failures reach the driver as errors, and Ray keeps "
                                     "the logs under its session directory (/tmp/ray/session_latest/logs).")


@dataclass(config=_FORBID)
class ExecutorConfig:
    workers: Int = param(0, "Sandbox servers in the executor pool; 0 means two per CPU core (at least 2, since a "
                            "validation run needs two separate processes).", min=0, max=256)
    timeout_s: Float = param(5.0, "Wall-clock limit for one program run, in seconds (the CPU-time rlimit follows "
                                  "it).", min=0.1, max=600.0)
    memory_mb: Int = param(512, "Address-space limit (RLIMIT_AS) of a program, in MiB.", min=64, max=65536)
    max_output_chars: Int = param(10_000, "Longest accepted literal text of a program's return value, in "
                                          "characters; longer outputs are rejected, never truncated.", min=16)
    determinism_runs: Int = param(2, "Runs of each program (proposals and answer checks alike), in different "
                                     "processes with different hash seeds; all must return the same output, or "
                                     "there is no verdict. 1 turns the check off.", min=1, max=2)
    confirm_runs: Int = param(2, "Extra runs, under hash seeds not used yet, of every output self-play would keep as "
                                 "a gold answer (a valid proposal's); any other output makes the proposal "
                                 "non-deterministic. Catches outputs that depend on the seed only sometimes. 0: off.",
                              min=0, max=2)
    probe_timeout_s: Float = param(0.25, "Wall-clock limit for one probe run of a proposal (its probe inputs, its "
                                         "runs beside the references); a slower probe is only unanswered. Gold runs "
                                         "and follow-up checks get min(timeout_s, validation_budget_s / 2).",
                                   min=0.05, max=600.0)
    validation_budget_s: Float = param(2.0, "Server-seconds every run made to validate one proposal may take "
                                            "together (gold runs, confirmations, probes, follow-ups: CPU seconds of "
                                            "each run, a timed-out run at its full timeout); past it the proposal's "
                                            "remaining runs are not made and it is invalid ('validation budget "
                                            "spent').", min=0.1, max=3600.0)
    grace_s: Float = param(2.0, "Seconds a sandbox server may take beyond a program's timeout to answer; a later "
                                "server is retired and replaced, and its job fails as a sandbox failure.",
                           min=0.1, max=60.0)


@dataclass(config=_FORBID)
class SelfPlayConfig:
    tasks: list[Literal["deduction", "abduction", "induction", "math"]] = param(
        ["deduction", "abduction", "induction", "math"],
        "Task types played each step: AZR's deduction, abduction, induction, and the seed's verifiable math.")
    propose_per_task: Int = param(1, "Proposer prompts per task type per step.", min=0)
    n_propose: Int = param(1, "Completions per proposer prompt.", min=1)
    n_mc: Int = param(4, "Monte-Carlo solves of each valid proposal, for its learnability reward (AZR uses 8).",
                      min=1)
    solve_per_task: Int = param(1, "Solver prompts per task type per step, drawn from its buffer as selfplay.solver_draw says.",
                                min=0)
    n_solve: Int = param(6, "Completions per solver prompt (the GRPO group size).", min=1)
    k_references: Int = param(3, "Buffer entries shown to a deduction/abduction/math proposer as references "
                                 "(AZR's K).", min=0)
    reference_style: Literal["program", "calls"] = param(
        "program", "How deduction/abduction references are shown: 'program' (the function, its call and output, "
                   "as AZR does) or 'calls' (only `- f(input) returns output`, no code: nothing to paste back; "
                   "experiment 2's proposer copied a shown program in 94% of its well-formed proposals).")
    solver_draw: Literal["uniform", "curriculum"] = param(
        "uniform", "How solver prompts are drawn from a buffer: 'uniform', or 'curriculum': the least-drawn "
                   "entries first, newest first among them, entries whose last group of answers was all correct "
                   "(or all wrong after two draws) only when nothing else is left.")
    solver_max_draws: Int = param(
        0, "Groups of solver answers a buffer entry gets before it is no longer a solver prompt (its Monte-Carlo "
           "solves count as one); 0: no limit. Experiment 3's steps 0-9 drew 14 distinct prompts 272 times: "
           "accuracy rose with each re-draw (0.16 on the first, 0.39 from the fourth) while the reasoning shrank "
           "(median 311 -> 103 characters), recalled rather than computed.", min=0)
    induction_inputs: Int = param(6, "Distinct inputs an induction proposal needs, every one valid (AZR's N); half "
                                     "of the pairs are shown to the solver, half judge its program.", min=2)
    induction_hint: Literal["required", "optional"] = param(
        "required", "Whether an induction proposal must carry a hint (a `Hint:` line or a message block): "
                    "'required' (AZR's message), or 'optional': the pairs alone, shown to the solver with "
                    "`Message: (none)`. Experiment 3's first 8 steps: 5 of 32 induction proposals had 6 or more "
                    "inputs and failed only for the missing hint; 1 was valid.")
    temperature: Float = param(1.0, "Sampling temperature of every rollout.", min=0.0)
    top_p: Float = param(1.0, "Nucleus sampling top-p of every rollout.", min=0.0, max=1.0)
    max_tokens: Int = param(128, "Longest proposer completion, in tokens (decoding is sequential: on a 2-core CPU "
                                 "the longest completion sets the step's generation time).", min=1)
    solve_max_tokens: Int = param(128, "Longest solver completion (reasoning, then the answer), in tokens; 0: "
                                     "max_tokens. The truncation rate per task is in the metrics "
                                     "(solve/truncated/<task>): a cut-off answer scores as unparseable.", min=0)
    answer_format: Literal["think", "answer"] = param(
        "think", "What a solver answer must look like: 'think' (AZR's strict <think>reasoning</think><answer>..."
                 "</answer>, nothing around it) or 'answer' (any <answer> tag, reasoning optional). A format "
                 "error scores rewards.solve_unparseable.")
    fresh_solves: Bool = param(True, "Solver prompts come first from this step's newly validated tasks (AZR's "
                                     "max_new), then from the buffers.")
    train_on_mc: Bool = param(True, "Train on the Monte-Carlo solves of new tasks as solver samples (they are "
                                    "on-policy and already generated); solver prompts then come from older buffer "
                                    "entries.")
    prompt_template: Literal["chat", "r1"] = param(
        "chat", "How prompts are wrapped: 'chat' (the tokenizer's chat template, for instruct models) or 'r1' "
                "(AZR's raw template, for base models).")
    open_think: Bool = param(True, "With the chat template, start the assistant's turn with <think> (as the r1 "
                                   "template does): the completion begins inside the reasoning. An instruct model "
                                   "that was never trained to write <think> (Qwen2.5-Coder-0.5B: 0 of 16 solver "
                                   "answers in a first step without it) otherwise fails the think format on every "
                                   "answer, and RL gets no signal.")
    format_example: Bool = param(True, "Show each solver prompt after one worked exchange of its task type (another "
                                       "task, answered in the exact think format) as an earlier turn. SmolLM2-135M "
                                       "then writes a well-formed answer in about 1 of 4 tries instead of almost never, "
                                       "so its groups have reward variance to learn from; the 0.5B configs turn it "
                                       "off (experiment 2's prompts).")
    streaming: Bool = param(True, "Stream the step through the rollout engines: each proposal is validated and its "
                                  "Monte-Carlo solves queued as soon as it finishes, answers are judged as they "
                                  "finish, and new requests join the batch the engines are decoding. false: "
                                  "rounds of one generate call each (proposals and buffer solves, then "
                                  "Monte-Carlo solves). Both are deterministic for a given seed (--resume "
                                  "regenerates the same samples); they sample different batches, so not the same "
                                  "completions as each other.")
    stream_steps: Int = param(8, "Engine steps (one token per running sequence) per streaming round; finished "
                                 "requests come back, and requests added since join, between rounds. Larger: "
                                 "fewer round trips, follow-ups queue longer.", min=1)


@dataclass(config=_FORBID)
class BufferConfig:
    cap: Int = param(4096, "Most entries per task buffer; the oldest is evicted past it.", min=1)
    seed_size: Int = param(4, "Entries the model itself proposes into each buffer, by seeding rounds (propose and "
                              "validate, no training), before training starts.", min=1)
    retire_seed_after: Int = param(4, "Once a buffer holds this many entries proposed by the model, its seed "
                                      "entries (AZR's identity triplet) are no longer shown as references, solved, "
                                      "or given to induction; 0: never.", min=0)
    seed_max_rounds: Int = param(1, "Seeding rounds before training starts anyway.", min=0)


@dataclass(config=_FORBID)
class RewardsConfig:
    preset: Literal["azr", "azr_code", "ladder", "seed"] = param(
        "azr", "Reward scheme: 'azr' (paper), 'azr_code' (AZR's code: -0.5 for never/always solved proposals), "
               "'ladder' (ranked: learnable new 1 - solve rate > unlearnable new -0.25 > rejected by the sandbox "
               "-0.5 > copies and unreadable text -1), 'seed' (+10/-10, +10 for any valid proposal). Each value "
               "below replaces the preset's when set.")
    solve_correct: Float | None = param(None, "Solver reward for a correct answer (azr: 1).")
    solve_wrong: Float | None = param(None, "Solver reward for a well-formed wrong answer (azr: -0.5).")
    solve_unparseable: Float | None = param(None, "Solver reward when no answer can be read (azr: -1).")
    propose_invalid: Float | None = param(None, "Proposer reward for a proposal nothing could be read from: no "
                                                "program or no input (every preset's bottom: azr -1).")
    propose_failed: Float | None = param(None, "Proposer reward for a well-formed proposal the sandbox rejected: "
                                               "an error, a trivial or giveaway task, too long (azr: -1, ladder: "
                                               "-0.5).")
    propose_extreme: Float | None = param(None, "Proposer reward when the Monte-Carlo solve rate is 0 or 1 "
                                                "(azr: 0, azr_code: -0.5).")
    propose_flat: Float | None = param(None, "If set, every valid proposal gets this instead of learnability "
                                             "(seed: 10).")
    propose_duplicate: Float | None = param(None, "Proposer reward for a valid proposal that copies or nearly "
                                                  "copies a known task (a reference or any buffer entry), or a "
                                                  "rejected proposal that is a known task or an edit of one: "
                                                  "the invalid reward in every preset (azr: -1, seed: -10), so "
                                                  "that copying never pays more than an honest broken proposal.")


@dataclass(config=_FORBID)
class AdvantagesConfig:
    estimator: Literal["trr++", "grpo", "batch_mean", "prompt+running"] = param(
        "trr++", "Advantage estimator: 'trr++' (AZR: whiten per task x role), 'grpo' (per prompt group), "
                 "'batch_mean' (the seed's: reward minus batch mean), 'prompt+running' (solver answers whitened "
                 "within their prompt's group, a group whose answers all score the same gets 0 and is not "
                 "trained on; proposals: reward minus a running mean of their task's proposer rewards, so a "
                 "step whose proposals all score the same still learns against the past).")
    running_decay: Float = param(0.95, "'prompt+running': decay of the running proposer baseline per step "
                                       "(SPIRAL's 0.95: the baseline remembers about 20 steps).", min=0.0, max=1.0)
    weighting: Literal["token", "sequence"] = param(
        "token", "Loss aggregation: 'token' (every token counts the same) or 'sequence' (every sample counts the "
                 "same).")


@dataclass(config=_FORBID)
class EvalConfig:
    benchmarks: list[Literal["gsm8k", "cruxeval-o", "cruxeval-i", "cruxeval-o-cot", "cruxeval-i-cot", "gsm8k-train",
                             "cruxeval-o-train", "cruxeval-i-train"]] = param(
        ["gsm8k", "cruxeval-o", "cruxeval-i", "gsm8k-train", "cruxeval-o-train", "cruxeval-i-train"],
        "Benchmarks `minazr eval` and `minazr experiment`'s final evaluation run. Plain names use standard prompts "
        "(CRUXEval's harness format, direct answer; GSM8K zero-shot chain of thought); -cot: CRUXEval's "
        "chain-of-thought variant; -train: the training solver prompt (in-format).")
    limit: Int = param(0, "Items per benchmark, from the start of each file; 0 evaluates all (GSM8K 1319, "
                          "CRUXEval 800 each).", min=0)
    max_tokens: Int = param(512, "Longest completion per item, in tokens (greedy decoding).", min=1)
    chunk: Int = param(256, "Prompts sent to the rollout workers per generate call (progress is reported per "
                            "chunk; bigger chunks batch better).", min=1)
    every: Int = param(0, "During `minazr train`, run the canary (eval.canary_benchmarks on the served weights) "
                          "once before the first step and then every N steps and at the end, logging "
                          "eval/<benchmark> and eval/net_vs_base/<benchmark>; 0: never.", min=0)
    canary_benchmarks: list[Literal["gsm8k", "cruxeval-o", "cruxeval-i", "cruxeval-o-cot", "cruxeval-i-cot",
                                    "gsm8k-train", "cruxeval-o-train", "cruxeval-i-train"]] = param(
        ["cruxeval-o", "cruxeval-i", "gsm8k"],
        "Benchmarks of the in-training canary (eval.every); the final evaluation of `minazr experiment` uses "
        "eval.benchmarks instead.")
    canary_items: Int = param(0, "Items per canary benchmark: the first N of each file, the same items at every "
                                 "canary so that they pair item by item with the one before training; 0: "
                                 "eval.limit (keep it small on a CPU).", min=0)
    canary_stop_items: Int = param(0, "Stop rule: end the run (checkpoint saved, exit code 0) when on two "
                                      "consecutive canaries the GSM8K canary has lost at least this many items "
                                      "net against the canary before training (items it got right then and wrong "
                                      "now, minus the reverse); needs gsm8k in eval.canary_benchmarks; 0: off.",
                                min=0)
    data_dir: Str = param("", "Folder with gsm8k_test.jsonl and cruxeval.jsonl; empty uses the copies shipped "
                              "in minazr/data.")


@dataclass(config=_FORBID)
class RunConfig:
    out_dir: Str = param("runs/latest", "Run directory: the resolved config, metrics and checkpoints go here.")
    seed: Int = param(0, "Seed for every random choice the driver makes.", min=0)


@dataclass(config=_FORBID)
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
    try:
        return TypeAdapter(Config).validate_python(raw)
    except ValidationError as e:
        raise ConfigError(_one_line(e.errors())) from None


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


_UNKNOWN = ("unexpected_keyword_argument", "extra_forbidden")
_EXPECTED = {"int_type": "an integer", "float_type": "a number", "bool_type": "true or false",
             "string_type": "a string", "list_type": "a list", "dataclass_type": "a mapping",
             "finite_number": "a finite number"}


def _one_line(errors: list[dict]) -> str:
    """One of pydantic's errors as `dotted.key[index]: problem`: an unknown key if there is one (the outermost, then
    the first by name), else the first error."""
    unknown = sorted((e for e in errors if e["type"] in _UNKNOWN), key=lambda e: (len(e["loc"]), [*map(str, e["loc"])]))
    error = (unknown or errors)[0]
    loc, value, kind, ctx = _field_loc(error["loc"]), error["input"], error["type"], error.get("ctx", {})
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "config"
    if kind in _UNKNOWN:
        return f"{key}: unknown key (known: {', '.join(_at(loc[:-1]).__pydantic_fields__)})"
    if kind == "literal_error":
        return f"{key}: {value!r} is not one of {', '.join(map(str, _choices(_at(loc))))}"
    if kind == "greater_than_equal":
        return f"{key}: {value} is below the minimum {ctx['ge']}"
    if kind == "less_than_equal":
        return f"{key}: {value} is above the maximum {ctx['le']}"
    if kind in _EXPECTED:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        return f"{key}: expected {_EXPECTED[kind]}, got {shown}"
    return f"{key}: {error['msg']}"


def _field_loc(loc) -> tuple:
    """`loc` without what pydantic appends past a field (the member of a union it tried: "literal['auto']", "bool"),
    except the unknown key itself."""
    node, out = Config, []
    for part in loc:
        fields = getattr(node, "__pydantic_fields__", None)
        if isinstance(part, str) and fields is not None:
            node = fields[part].annotation if part in fields else None
        elif isinstance(part, int) and get_origin(node) is list:
            node = get_args(node)[0]
        else:
            break
        out.append(part)
    return tuple(out)


def _at(loc):
    """What `loc` points at in Config: a section class or a field's annotation (list indexes step into items)."""
    node = Config
    for part in loc:
        node = node.__pydantic_fields__[part].annotation if isinstance(part, str) else get_args(node)[0]
    return node


# ---------------------------------------------------------------- writing and docs


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, run_dir: str | Path, notes: list[str] = ()) -> Path:
    """Write the resolved config as `run_dir/config.yaml`, `notes` as comment lines at its top (what `auto` values
    resolved to on this machine); `load_config` reads it back to the same Config."""
    path = Path(run_dir) / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "".join(f"# {note}\n" for note in notes)
    path.write_text(header + yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return path


def _choices(ann) -> tuple:
    """The values a `Literal[...]` (or `list[Literal[...]]`) field allows; () for any."""
    if get_origin(ann) is list:
        ann = get_args(ann)[0]
    if get_origin(ann) in (Union, types.UnionType):  # e.g. "auto" or a bool
        members = [_choices(a) or ((True, False) if _type_name(a) == "bool" else ()) for a in get_args(ann)]
        return () if not all(members) else tuple(c for m in members for c in m)
    return get_args(ann) if get_origin(ann) is Literal else ()


def _type_name(ann) -> str:
    origin, args = get_origin(ann), get_args(ann)
    if origin is Annotated:
        return _type_name(args[0])
    if origin is Literal:
        return type(args[0]).__name__
    if origin is list:
        return f"list[{_type_name(args[0])}]"
    if origin in (Union, types.UnionType):
        return " or ".join(map(_type_name, args))
    return "None" if ann is type(None) else ann.__name__


DOCS_HEADER = """# Configuration

Every config field, generated from `minazr/driver/config.py` by
`.venv/bin/minazr config --docs > docs/configuration.md` (tests/test_config.py checks that this page is exactly
that output, so it cannot drift from the code).

A run's config is one YAML file (`configs/*.yaml`; a field left out keeps its default), then overrides on the
command line as `section.key=value` (the value is read as YAML: `selfplay.tasks=[deduction, math]`). Everything is
checked once, at load time: an unknown key, a wrong type or a value out of range stops the command with one line
naming the key. `minazr config --config FILE [overrides]` prints the resolved config; every run saves it as
`RUN_DIR/config.yaml`. How the fields work together: [training.md](training.md#configs-and-overrides).
"""


def docs_markdown() -> str:
    """The configuration page: a header, then a markdown table of every field: key, type, default, range, help."""
    rows = ["| key | type | default | allowed | meaning |", "| --- | --- | --- | --- | --- |"]
    for section, info in Config.__pydantic_fields__.items():
        for name, f in info.annotation.__pydantic_fields__.items():
            ge = next((m.ge for m in f.metadata if hasattr(m, "ge")), None)
            le = next((m.le for m in f.metadata if hasattr(m, "le")), None)
            choices = _choices(f.annotation)
            allowed = ", ".join(x for x in (
                f">= {ge}" if ge is not None else "",
                f"<= {le}" if le is not None else "",
                f"one of {', '.join(map(str, choices))}" if choices else "") if x)
            default = f.get_default(call_default_factory=True)
            default = "null" if default is None else default
            rows.append(f"| `{section}.{name}` | {_type_name(f.annotation)} | `{default}` | {allowed or 'any'} | "
                        f"{f.description} |")
    return DOCS_HEADER + "\n" + "\n".join(rows)
