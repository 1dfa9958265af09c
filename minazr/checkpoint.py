"""Checkpoints: RUN_DIR/checkpoints/step_000010/{model/, learner_state.pt, buffers/, driver.json}.

A checkpoint is written into a hidden temporary directory and renamed into place only when complete, and
`RUN_DIR/checkpoints/latest` (a one-line file) is replaced atomically after that: a crash during a save leaves the
previous checkpoint as the latest, never a half-written one.
"""

import json
import random
import shutil
from pathlib import Path


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
    final = root / f"step_{step:06d}"
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    pointer = root / ".latest.tmp"
    pointer.write_text(final.name + "\n")
    pointer.replace(root / "latest")
    for old in sorted(p for p in root.glob("step_*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest(run_dir: str | Path) -> Path | None:
    pointer = checkpoint_root(run_dir) / "latest"
    if not pointer.is_file():
        return None
    path = checkpoint_root(run_dir) / pointer.read_text().strip()
    return path if (path / "driver.json").is_file() else None


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
