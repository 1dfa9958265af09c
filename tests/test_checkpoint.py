"""Checkpoints are atomic and verified: a crash mid-save leaves the previous one as latest; a damaged one is refused
with one line (by `verify`, and by `minazr train --resume` through the CLI)."""

import json
import random
import struct
import subprocess
import sys

import pytest

from minazr.driver import checkpoint


def _save(run, step, payload=b"x" * 100):
    tmp = checkpoint.begin(run, step)
    (tmp / "model").mkdir()
    header = json.dumps({"w": {"dtype": "F32", "shape": [len(payload) // 4], "data_offsets": [0, len(payload)]}})
    (tmp / "model" / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header.encode() + payload)
    (tmp / "model" / "config.json").write_text("{}")
    (tmp / "learner_state.pt").write_bytes(b"PK" + b"\0" * 50)
    checkpoint.save_driver_state(tmp, step, step, random.Random(step))
    return checkpoint.commit(run, tmp, step, keep=2)


def test_commit_writes_a_manifest_and_verify_accepts_it(tmp_path):
    ckpt = _save(tmp_path, 1)
    assert checkpoint.latest(tmp_path) == ckpt
    manifest = json.loads((ckpt / "manifest.json").read_text())
    assert set(manifest) == {"model/model.safetensors", "model/config.json", "learner_state.pt", "driver.json"}
    checkpoint.verify(ckpt)
    step, version, rng = checkpoint.load_driver_state(ckpt)
    assert (step, version, rng.random()) == (1, 1, random.Random(1).random())


def test_crash_during_save_leaves_the_previous_checkpoint(tmp_path):
    first = _save(tmp_path, 1)
    tmp = checkpoint.begin(tmp_path, 2)  # a save that never finishes: the process died here
    (tmp / "driver.json").write_text('{"step": 2')
    assert checkpoint.latest(tmp_path) == first
    checkpoint.verify(first)
    assert _save(tmp_path, 2).name == "step_000002"  # the next save cleans the leftover up
    assert not tmp.exists() and checkpoint.latest(tmp_path).name == "step_000002"


@pytest.mark.parametrize("damage,expected", [
    (lambda c: (c / "learner_state.pt").write_bytes(b"PK"), "learner_state.pt has 2 bytes, expected 52"),
    (lambda c: (c / "model" / "config.json").unlink(), "model/config.json is missing"),
    (lambda c: (c / "driver.json").write_text("{" + " " * ((c / "driver.json").stat().st_size - 1)),
     "driver.json is not valid JSON"),
    (lambda c: (c / "model" / "model.safetensors").write_bytes(
        b"\xff" * (c / "model" / "model.safetensors").stat().st_size),  # same size, garbage header
     "model/model.safetensors is not a valid safetensors file"),
    (lambda c: (c / "manifest.json").write_text("{"), "unreadable manifest.json"),
])
def test_damaged_checkpoints_are_refused(tmp_path, damage, expected):
    ckpt = _save(tmp_path, 1)
    damage(ckpt)
    with pytest.raises(ValueError, match=expected) as e:
        checkpoint.verify(ckpt)
    assert "\n" not in str(e.value)


def test_resume_from_a_damaged_checkpoint_is_one_line(tmp_path):
    ckpt = _save(tmp_path, 1)
    (tmp_path / "config.yaml").write_text("run:\n  seed: 1\n")
    (ckpt / "model" / "model.safetensors").write_bytes(b"\0" * 10)
    res = subprocess.run([sys.executable, "-m", "minazr", "train", "--resume", str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().startswith(f"minazr: cannot resume: {ckpt}: model/model.safetensors has 10 bytes, "
                                         f"expected ") and "\n" not in res.stderr.strip()


def test_pruning_keeps_the_new_checkpoint_even_below_old_ones(tmp_path):
    """A fresh run in an old run directory: a leftover higher step never makes the new checkpoint disappear."""
    _save(tmp_path, 10)
    for step in (1, 2, 3):
        new = _save(tmp_path, step)
        assert new.is_dir() and checkpoint.latest(tmp_path) == new
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*"))
    assert names == ["step_000002", "step_000003", "step_000010"]  # keep=2 below the new one's step, old 10 kept


def test_checkpoint_without_manifest_still_loads(tmp_path):
    ckpt = _save(tmp_path, 1)
    (ckpt / "manifest.json").unlink()  # written by an older minAZR
    checkpoint.verify(ckpt)
    (ckpt / "driver.json").write_text("{")
    with pytest.raises(ValueError, match="driver.json is not valid JSON"):
        checkpoint.verify(ckpt)


def test_truncate_after_keeps_logged_steps_up_to_the_resume_point(tmp_path):
    from minazr.driver.metrics import truncate_after

    log = tmp_path / "metrics.jsonl"
    assert truncate_after(log, 1) == 0 and not log.exists()  # no log yet: nothing to do, nothing created
    log.write_text("".join(json.dumps({"step": s, "x": s * 10}) + "\n" for s in (0, 1, 2, 3)) + "\n")
    assert truncate_after(log, 1) == 3  # steps 2 and 3 are redone after resuming at step 2; the blank line goes
    assert [json.loads(line) for line in log.read_text().splitlines()] == [{"step": 0, "x": 0}, {"step": 1, "x": 10}]
    assert truncate_after(log, -1) == 2 and log.read_text() == ""  # a fresh run starts the log anew
