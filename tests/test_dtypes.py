"""The engine and learner dtypes follow the CPU's flags (minazr/contracts/dtypes.py): bf16 only where it is native.

Both branches go through the functions the rollout engine (`engine_dtype`) and the learner (`learner_autocast`) call
themselves; the CPU is described by a /proc/cpuinfo file or by MINAZR_CPU_FLAGS. The real engine's dtype under a
forced flag set is checked in tests/test_integration_train.py.
"""

import pytest

from minazr.contracts.dtypes import (FLAGS_ENV, choose_dtypes, cpu_flags, engine_dtype, learner_autocast,
                                     native)
from minazr.driver.config import ConfigError, LearnerConfig, RolloutConfig, load_config

AVX2_ONLY = frozenset("fpu sse4_2 avx avx2 fma f16c".split())  # a typical laptop: no bf16 arithmetic
AVX512_BF16 = AVX2_ONLY | {"avx512f", "avx512bw", "avx512_bf16"}
AMX = AVX2_ONLY | {"avx512f", "amx_tile", "amx_bf16"}


def _cpuinfo(tmp_path, flags) -> str:
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: " + " ".join(sorted(flags)) + "\n\n"
                    "processor\t: 1\nflags\t\t: " + " ".join(sorted(flags)) + "\n")
    return str(path)


def test_flags_are_read_from_cpuinfo_and_the_override_wins(tmp_path, monkeypatch):
    monkeypatch.delenv(FLAGS_ENV, raising=False)
    assert cpu_flags(_cpuinfo(tmp_path, AVX512_BF16)) == AVX512_BF16
    assert cpu_flags(tmp_path / "missing") == frozenset()  # not Linux: nothing assumed native
    monkeypatch.setenv(FLAGS_ENV, "avx2, avx512_bf16")
    assert cpu_flags(_cpuinfo(tmp_path, AVX2_ONLY)) == {"avx2", "avx512_bf16"}
    monkeypatch.setenv(FLAGS_ENV, "")
    assert cpu_flags(_cpuinfo(tmp_path, AVX512_BF16)) == frozenset()


@pytest.mark.parametrize("flags, engine", [(AVX2_ONLY, "float32"), (AVX512_BF16, "bfloat16"), (AMX, "bfloat16")])
def test_auto_is_bf16_only_where_the_cpu_computes_it(flags, engine):
    assert engine_dtype("auto", on_gpu=False, flags=flags) == engine
    assert learner_autocast("auto", on_gpu=False, flags=flags) is (engine == "bfloat16")
    assert native("bfloat16", flags) is (engine == "bfloat16") and native("float32", flags)


def test_the_engine_and_learner_read_this_machines_flags_when_given_none(monkeypatch):
    """The call the engine makes (no flags argument) decides from MINAZR_CPU_FLAGS / /proc/cpuinfo."""
    monkeypatch.setenv(FLAGS_ENV, " ".join(AVX2_ONLY))
    assert engine_dtype("auto", on_gpu=False) == "float32" and learner_autocast("auto", on_gpu=False) is False
    monkeypatch.setenv(FLAGS_ENV, " ".join(AMX))
    assert engine_dtype("auto", on_gpu=False) == "bfloat16" and learner_autocast("auto", on_gpu=False) is True


def test_explicit_values_and_gpus_are_kept():
    for dtype in ("bfloat16", "float16", "float32"):
        assert engine_dtype(dtype, on_gpu=False, flags=AVX2_ONLY) == dtype
    assert engine_dtype("auto", on_gpu=True, flags=AVX2_ONLY) == "bfloat16"
    assert learner_autocast("auto", on_gpu=True, flags=AVX2_ONLY) is True
    assert learner_autocast(False, on_gpu=True, flags=AMX) is False
    assert learner_autocast(True, on_gpu=False, flags=AVX2_ONLY) is True


def test_the_run_line_says_what_was_chosen_and_why():
    auto = choose_dtypes(RolloutConfig(), LearnerConfig(), AVX2_ONLY)
    assert (auto.engine, auto.autocast, auto.warnings) == ("float32", False, [])
    assert "engine float32 (auto)" in auto.line and "no native bf16" in auto.line and "\n" not in auto.line
    native_ = choose_dtypes(RolloutConfig(), LearnerConfig(), AMX)
    assert (native_.engine, native_.autocast, native_.warnings) == ("bfloat16", True, [])
    assert "amx_bf16" in native_.line


def test_bf16_asked_for_on_a_cpu_without_it_runs_with_one_warning_each():
    forced = choose_dtypes(RolloutConfig(dtype="bfloat16"), LearnerConfig(autocast_bf16=True), AVX2_ONLY)
    assert (forced.engine, forced.autocast) == ("bfloat16", True)
    engine_warning, learner_warning = forced.warnings
    assert "rollout.dtype=auto" in engine_warning and "slower" in engine_warning  # the cost and the override
    assert "learner.autocast_bf16=auto" in learner_warning and "15x" in learner_warning
    assert all("\n" not in w for w in forced.warnings)
    assert choose_dtypes(RolloutConfig(dtype="bfloat16"), LearnerConfig(autocast_bf16=True), AMX).warnings == []
    gpu = choose_dtypes(RolloutConfig(dtype="bfloat16", num_gpus=1), LearnerConfig(autocast_bf16=True, num_gpus=1),
                        AVX2_ONLY)
    assert gpu.warnings == []


def test_config_takes_auto_true_false_and_rejects_the_rest():
    cfg = load_config(None)
    assert (cfg.rollout.dtype, cfg.learner.autocast_bf16) == ("auto", "auto")
    assert load_config(None, ["learner.autocast_bf16=false"]).learner.autocast_bf16 is False
    assert load_config(None, ["rollout.dtype=float32"]).rollout.dtype == "float32"
    with pytest.raises(ConfigError, match="rollout.dtype"):
        load_config(None, ["rollout.dtype=bf16"])
    with pytest.raises(ConfigError, match="learner.autocast_bf16"):
        load_config(None, ["learner.autocast_bf16=sometimes"])
