"""Which dtypes the engine and the learner compute in: what the hardware does natively (pure Python, no torch).

    choice = choose_dtypes(cfg.rollout, cfg.learner)          # reads this machine's /proc/cpuinfo flags
    choice.engine, choice.autocast, choice.line               # "float32", False, "dtypes: engine float32 ..."

bf16 on a CPU pays off only where the CPU computes it natively (AVX-512 BF16 or AMX). Elsewhere (AVX2-only laptops
and many cloud VMs) every bf16 matmul is emulated: measured on a 2-core AVX2 CPU, the vLLM engine generated 36
tok/s in bf16 against 199 in float32, and the learner's bf16 autocast ran forward + backward 15x slower than
float32 (5 vs 78 tok/s). So `auto`, the default of `rollout.dtype` and `learner.autocast_bf16`, picks bf16 where it
is native (and on CUDA) and float32 otherwise; an explicit `bfloat16` still runs, with a warning that names the
cost and the override. The rollout engine, the learner and the driver all decide through `engine_dtype` and
`learner_autocast`, so what the run logs is what the engine runs.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

# flags /proc/cpuinfo shows for native bf16 arithmetic: AVX-512 BF16 (Cooper Lake, Zen 4+), AMX (Sapphire Rapids+)
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
FP16_FLAGS = ("avx512_fp16", "amx_fp16")
# the run's override of what /proc/cpuinfo says (a comma-separated flag list, or "" for none): for tests, and for
# measuring on one machine what a CPU without these flags would choose
FLAGS_ENV = "MINAZR_CPU_FLAGS"


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags (the first `flags` line of /proc/cpuinfo), or MINAZR_CPU_FLAGS when it is set."""
    if FLAGS_ENV in os.environ:
        return frozenset(f.strip() for f in os.environ[FLAGS_ENV].replace(",", " ").split() if f.strip())
    try:
        text = Path(cpuinfo).read_text()
    except OSError:  # not Linux: nothing known, so nothing assumed native
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def native(dtype: str, flags: frozenset[str]) -> bool:
    """Does a CPU with these flags compute `dtype` natively?"""
    if dtype == "float32":
        return True
    return bool(set(BF16_FLAGS if dtype == "bfloat16" else FP16_FLAGS) & flags)


def engine_dtype(requested: str, on_gpu: bool, flags: frozenset[str] | None = None) -> str:
    """The dtype the vLLM engine loads weights in (and the learner publishes in): `requested` unless it is `auto`,
    which is bfloat16 on a GPU or on a CPU with native bf16, float32 otherwise."""
    if requested != "auto":
        return requested
    if on_gpu:
        return "bfloat16"
    return "bfloat16" if native("bfloat16", cpu_flags() if flags is None else flags) else "float32"


def learner_autocast(requested, on_gpu: bool, flags: frozenset[str] | None = None) -> bool:
    """Does the learner run forward/backward under bf16 autocast? `requested` is true, false or "auto" (on a GPU or
    a CPU with native bf16)."""
    if requested != "auto":
        return bool(requested)
    return on_gpu or native("bfloat16", cpu_flags() if flags is None else flags)


@dataclass(frozen=True)
class DtypeChoice:
    engine: str  # the vLLM engine's weight dtype, also the dtype published on the weight wire
    autocast: bool  # the learner's forward/backward under bf16 autocast (master weights are fp32 either way)
    line: str  # the one line the run logs at start
    warnings: list[str] = field(default_factory=list)  # a half dtype asked for on a CPU that emulates it


def choose_dtypes(rollout_cfg, learner_cfg, flags: frozenset[str] | None = None) -> DtypeChoice:
    """The run's dtypes from its config and this machine's CPU flags, with the line that says why."""
    flags = cpu_flags() if flags is None else flags
    engine_gpu, learner_gpu = rollout_cfg.num_gpus > 0, learner_cfg.num_gpus > 0
    engine = engine_dtype(rollout_cfg.dtype, engine_gpu, flags)
    autocast = learner_autocast(learner_cfg.autocast_bf16, learner_gpu, flags)
    has = [f for f in BF16_FLAGS if f in flags]
    cpu = f"this CPU has {'/'.join(has)}" if has else f"this CPU has no native bf16 ({' / '.join(BF16_FLAGS)})"
    how = lambda asked: "auto" if asked == "auto" else "set"  # noqa: E731
    line = (f"dtypes: engine {engine} ({how(rollout_cfg.dtype)}{', GPU' if engine_gpu else ''}), learner fp32 "
            f"weights{' + bf16 autocast' if autocast else ', fp32 compute'} ({how(learner_cfg.autocast_bf16)}"
            f"{', GPU' if learner_gpu else ''}); {cpu}")
    warnings = []
    if not engine_gpu and engine != "float32" and not native(engine, flags):
        warnings.append(f"rollout.dtype={engine} on a CPU that emulates it: generation is several times slower "
                        f"(measured 5x slower than float32 on an AVX2 CPU); set rollout.dtype=auto or float32")
    if not learner_gpu and autocast and not native("bfloat16", flags):
        warnings.append("learner.autocast_bf16=true on a CPU without native bf16: the learner's forward and backward "
                        "are about 15x slower than in float32; set learner.autocast_bf16=auto or false")
    return DtypeChoice(engine, autocast, line, warnings)
