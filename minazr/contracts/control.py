"""The control channel of a running training run: files in RUN_DIR/control/ (no Ray, no network).

    driver:  beacon = Beacon(run_dir); beacon.beat()          # while the run trains, every few seconds
             for request in beacon.requests(): ...; beacon.reply(request, ok, message)
             beacon.close()                                   # the run ended: `minazr scale` refuses from now on
    user:    minazr scale RUN_DIR --workers N                 # ask(run_dir, N) -> Reply

Why files: the run directory is the one name a user has for a run, on a laptop and on a cluster's head node alike
(where `ray job submit` runs the driver), and a file protocol needs neither a Ray client connection nor an open
port. Every file is written to a temporary name and renamed, so a reader never sees half of one.

Files (**contract**):
- `driver.json`: `{"pid", "host", "started", "heartbeat"}` (times in Unix seconds) while a driver runs the loop;
  removed when it exits. A heartbeat older than STALE_S means the driver is gone (killed without cleaning up).
- `scale-<id>.json`: a request, `{"id", "workers", "time"}`; the driver deletes it once answered.
- `reply-<id>.json`: the driver's answer, `{"id", "ok", "message"}`; the asking command deletes it once read.
"""

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

CONTROL = "control"
BEACON = "driver.json"
STALE_S = 60.0  # a driver beats every few seconds; this long without one means it is gone


class ControlError(ValueError):
    """A request that cannot be sent (no run there, no driver running it, bad count): one line for the user."""


@dataclass(frozen=True)
class Request:
    id: str
    workers: int


@dataclass(frozen=True)
class Reply:
    ok: bool
    message: str


def control_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / CONTROL


def _write(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(obj) + "\n")
    tmp.replace(path)


def _read(path: Path) -> dict | None:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):  # gone meanwhile, or not ours: ignored, never half-read (writes are renames)
        return None
    return obj if isinstance(obj, dict) else None


class Beacon:
    """The driver's side: says the run is alive, hands over requests, writes replies."""

    def __init__(self, run_dir: str | os.PathLike):
        self.dir = control_dir(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob("scale-*.json"):  # left by a command that asked a driver that is gone
            stale.unlink(missing_ok=True)
        self.started = time.time()
        self.beat()

    def beat(self) -> None:
        _write(self.dir / BEACON, {"pid": os.getpid(), "host": socket.gethostname(), "started": self.started,
                                   "heartbeat": time.time()})

    def requests(self) -> list[Request]:
        """Requests waiting for an answer, oldest first; a malformed one is answered as refused here."""
        found = []
        for path in sorted(self.dir.glob("scale-*.json"), key=lambda p: p.stat().st_mtime_ns):
            obj = _read(path)
            rid = path.stem[len("scale-"):]
            workers = obj.get("workers") if obj else None
            if not isinstance(workers, int) or isinstance(workers, bool):
                self.reply(Request(rid, 0), False, f"malformed request {path.name}: {obj!r}")
                continue
            found.append(Request(rid, workers))
        return found

    def reply(self, request: Request, ok: bool, message: str) -> None:
        _write(self.dir / f"reply-{request.id}.json", {"id": request.id, "ok": ok, "message": message})
        (self.dir / f"scale-{request.id}.json").unlink(missing_ok=True)

    def close(self) -> None:
        (self.dir / BEACON).unlink(missing_ok=True)


def driver_state(run_dir: str | os.PathLike, now: float | None = None) -> dict:
    """The running driver's beacon; ControlError (one line) when there is no run or no driver running it."""
    run = Path(run_dir)
    if not run.is_dir():
        raise ControlError(f"{run_dir}: no such run directory")
    beacon = _read(control_dir(run) / BEACON)
    if beacon is None:
        done = "finished or stopped" if (run / "metrics.jsonl").is_file() else "is not a training run"
        raise ControlError(f"{run_dir}: no driver is running this run (it {done}); start or resume it with "
                           f"`minazr train --resume {run_dir}`")
    age = (now or time.time()) - float(beacon.get("heartbeat", 0))
    if age > STALE_S:
        raise ControlError(f"{run_dir}: its driver (pid {beacon.get('pid')} on {beacon.get('host')}) has not been "
                           f"heard from for {age:.0f} s: it was killed or its machine is gone")
    return beacon


def ask(run_dir: str | os.PathLike, workers: int, timeout_s: float = 120.0, poll_s: float = 0.25) -> Reply:
    """Send a scale request to the driver of `run_dir` and wait for its answer. ControlError (one line) for a
    count below 1, a missing run or driver, or no answer within timeout_s (the request is then withdrawn)."""
    if workers < 1:
        raise ControlError(f"--workers {workers}: a run needs at least one rollout worker (to end a run, stop its "
                           "driver; it resumes with `minazr train --resume RUN_DIR`)")
    driver_state(run_dir)
    rid = uuid.uuid4().hex[:12]
    cdir = control_dir(run_dir)
    request, reply = cdir / f"scale-{rid}.json", cdir / f"reply-{rid}.json"
    _write(request, {"id": rid, "workers": workers, "time": time.time()})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = _read(reply)
        if answer is not None:
            reply.unlink(missing_ok=True)
            return Reply(bool(answer.get("ok")), str(answer.get("message", "")))
        time.sleep(poll_s)
    request.unlink(missing_ok=True)
    answer = _read(reply)  # answered in the last instant
    if answer is not None:
        reply.unlink(missing_ok=True)
        return Reply(bool(answer.get("ok")), str(answer.get("message", "")))
    raise ControlError(f"{run_dir}: the driver did not answer within {timeout_s:.0f} s; the request was withdrawn "
                       "(is the driver stuck? see its log)")
