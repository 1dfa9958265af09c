"""Checkpoints: RUN_DIR/checkpoints/step_000010/{model/, learner_state.pt, buffers/, driver.json}.

A checkpoint is written into a hidden temporary directory and renamed into place only when complete, and
`RUN_DIR/checkpoints/latest` (a one-line file) is replaced atomically after that: a crash during a save leaves the
previous checkpoint as the latest, never a half-written one. `commit` also writes `manifest.json` (every file's
size) last, and `verify` checks it, the JSON files and the safetensors headers before a resume, so a checkpoint
damaged later (a truncated copy, a disk error) is refused with one line instead of loading wrong.
"""

import json
import logging
import random
import shutil
import struct
from pathlib import Path

MANIFEST = "manifest.json"
log = logging.getLogger(__name__)


def checkpoint_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def begin(run_dir: str | Path, step: int) -> Path:
    """A fresh temporary directory to write the checkpoint of `step` into."""
    tmp = checkpoint_root(run_dir) / f".tmp-step_{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def commit(run_dir: str | Path, tmp: Path, step: int, keep: int) -> Path:
    """Move the finished checkpoint into place, point `latest` at it, delete all but the `keep` newest."""
    root = checkpoint_root(run_dir)
    files = sorted(p for p in tmp.rglob("*") if p.is_file())
    (tmp / MANIFEST).write_text(json.dumps({str(p.relative_to(tmp)): p.stat().st_size for p in files}))
    final = root / f"step_{step:06d}"
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    pointer = root / ".latest.tmp"
    pointer.write_text(final.name + "\n")
    pointer.replace(root / "latest")
    older = sorted(p for p in root.glob("step_*") if p.is_dir() and p.name < final.name)
    for old in older[:max(0, len(older) - (keep - 1))]:  # keep the new one and the keep - 1 before it
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest(run_dir: str | Path) -> Path | None:
    pointer = checkpoint_root(run_dir) / "latest"
    if not pointer.is_file():
        return None
    path = checkpoint_root(run_dir) / pointer.read_text().strip()
    return path if (path / "driver.json").is_file() else None


def verify(directory: Path) -> None:
    """Raise ValueError (one line) unless every file of the manifest is there with its size and readable."""
    if not (directory / MANIFEST).exists():  # written before manifests existed: check what can be checked
        log.warning("%s has no %s (an older checkpoint): checking its files without sizes", directory, MANIFEST)
        manifest = {str(p.relative_to(directory)): p.stat().st_size for p in directory.rglob("*") if p.is_file()}
    else:
        try:
            manifest = json.loads((directory / MANIFEST).read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{directory}: unreadable {MANIFEST} ({type(e).__name__})") from None
    for rel, size in manifest.items():
        path = directory / rel
        if not path.is_file():
            raise ValueError(f"{directory}: {rel} is missing")
        if path.stat().st_size != size:
            raise ValueError(f"{directory}: {rel} has {path.stat().st_size} bytes, expected {size} (damaged)")
        if path.suffix == ".json":
            _readable_json(path, directory)
        elif path.suffix == ".safetensors":
            _readable_safetensors(path, directory)
    if "driver.json" not in manifest or not any(r.startswith("model/") for r in manifest):
        raise ValueError(f"{directory}: incomplete checkpoint (no driver.json or model/)")


def _readable_json(path: Path, directory: Path) -> None:
    try:
        json.loads(path.read_text())
    except (OSError, ValueError):
        raise ValueError(f"{directory}: {path.relative_to(directory)} is not valid JSON") from None


def _readable_safetensors(path: Path, directory: Path) -> None:
    """The 8-byte header length and the JSON header of a safetensors file (the tensors' own bytes not read)."""
    try:
        with path.open("rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > path.stat().st_size:
                raise ValueError("header length past the end of the file")
            header = json.loads(fh.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        ok = 8 + n + end == path.stat().st_size
    except (OSError, ValueError, OverflowError, struct.error, KeyError, TypeError, IndexError, AttributeError):
        ok = False
    if not ok:
        raise ValueError(f"{directory}: {path.relative_to(directory)} is not a valid safetensors file")


def save_driver_state(directory: Path, step: int, version: int, rng: random.Random) -> None:
    state = {"step": step, "version": version, "rng": _rng_to_json(rng.getstate())}
    (directory / "driver.json").write_text(json.dumps(state))


def load_driver_state(directory: Path) -> tuple[int, int, random.Random]:
    try:
        state = json.loads((directory / "driver.json").read_text())
        rng = random.Random()
        rng.setstate(_rng_from_json(state["rng"]))
        return int(state["step"]), int(state["version"]), rng
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{directory}: unreadable checkpoint ({type(e).__name__}: {e})") from None


def _rng_to_json(state):
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _rng_from_json(data):
    version, internal, gauss = data
    return version, tuple(internal), gauss
