"""The one metrics sink: `log(metrics, step)` to RUN_DIR/metrics.jsonl, TensorBoard and (optionally) W&B.

Keys are namespaced (`reward/solve/deduction`, `time/learner_update`). metrics.jsonl gets one JSON object per step,
flushed at once, so a crash loses nothing already logged.
"""

import json
import logging
import math
from pathlib import Path

log = logging.getLogger(__name__)


class MetricsSink:
    def __init__(self, run_dir: str | Path, tensorboard: bool = True, wandb: bool = False, config: dict | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a")
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(run_dir) / "tb"))
            except ImportError as e:
                log.warning("TensorBoard logging off: %s", e)
        self._wandb = None
        if wandb:
            try:
                import wandb as wb

                self._wandb = wb.init(project="minazr", dir=str(run_dir), config=config or {})
            except Exception as e:  # not installed or not logged in: keep training, say so
                log.warning("W&B logging off: %s", e)

    def log(self, metrics: dict, step: int) -> None:
        clean = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self._fh.write(json.dumps({"step": step, **clean}) + "\n")
        self._fh.flush()
        if self._tb is not None:
            for k, v in clean.items():
                if math.isfinite(v):
                    self._tb.add_scalar(k, v, step)
            self._tb.flush()
        # W&B steps start at 0 and only grow (it drops an earlier step with a warning): the canary before training
        # (step -1) stays in metrics.jsonl and TensorBoard
        if self._wandb is not None and step >= 0:
            self._wandb.log(clean, step=step)

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def truncate_after(path: str | Path, step: int) -> int:
    """Drop metrics lines of steps after `step` (a resumed run redoes them); returns how many were dropped."""
    path = Path(path)
    if not path.is_file():
        return 0
    lines = path.read_text().splitlines()
    keep = [ln for ln in lines if ln.strip() and json.loads(ln).get("step", -1) <= step]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(ln + "\n" for ln in keep))
    tmp.replace(path)
    return len(lines) - len(keep)
