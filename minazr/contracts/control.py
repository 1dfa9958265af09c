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
- `scale-<id>.json`: a request, `{"id", "workers", "time"}`. The driver claims it by renaming it to
  `claimed-<id>.json` before it acts, and deletes that once answered; a request the asker withdrew (deleted) before
  the claim is never acted on, and one already claimed is waited for, never withdrawn.
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
    """A request that cannot be sent (no run there, no driver running it, bad count; exit code 2) or that got no
    answer in time (exit code 1): one line for the user."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Request:
    id: str
    workers: int


@dataclass(frozen=True)
class Reply:
    ok: bool
    message: str


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:  # withdrawn between the listing and now: sorts last, then skipped
        return 1 << 62


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
        for pattern in ("scale-*.json", "claimed-*.json", "reply-*.json"):  # left from a driver that is gone
            for stale in self.dir.glob(pattern):
                stale.unlink(missing_ok=True)
        self.started = time.time()
        self.beat()

    def beat(self) -> None:
        _write(self.dir / BEACON, {"pid": os.getpid(), "host": socket.gethostname(), "started": self.started,
                                   "heartbeat": time.time()})

    def requests(self) -> list[Request]:
        """Waiting requests, oldest first, without claiming them; a malformed one is answered as refused here."""
        found = []
        for path in sorted(self.dir.glob("scale-*.json"), key=_mtime):
            obj = _read(path)
            if obj is None and not path.exists():  # withdrawn meanwhile
                continue
            rid = path.stem[len("scale-"):]
            workers = obj.get("workers") if obj else None
            if not isinstance(workers, int) or isinstance(workers, bool):
                self.reply(Request(rid, 0), False, f"malformed request {path.name}: {obj!r}")
                continue
            found.append(Request(rid, workers))
        return found

    def claim(self, request: Request) -> bool:
        """Take `request` on (True), unless its asker withdrew it first (False: do nothing)."""
        try:
            (self.dir / f"scale-{request.id}.json").rename(self.dir / f"claimed-{request.id}.json")
        except FileNotFoundError:
            return False
        return True

    def reply(self, request: Request, ok: bool, message: str) -> None:
        _write(self.dir / f"reply-{request.id}.json", {"id": request.id, "ok": ok, "message": message})
        for name in (f"scale-{request.id}.json", f"claimed-{request.id}.json"):
            (self.dir / name).unlink(missing_ok=True)

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
    count below 1, a missing run or driver, or no answer within timeout_s: a request the driver has not taken on
    yet is then withdrawn; one it has taken on is waited for as long again, since it is being carried out."""
    if workers < 1:
        raise ControlError(f"--workers {workers}: a run needs at least one rollout worker (to end a run, stop its "
                           "driver; it resumes with `minazr train --resume RUN_DIR`)")
    if timeout_s <= 0:
        raise ControlError(f"--timeout {timeout_s:g}: expected a positive number of seconds")
    driver_state(run_dir)
    rid = uuid.uuid4().hex[:12]
    cdir = control_dir(run_dir)
    request, reply = cdir / f"scale-{rid}.json", cdir / f"reply-{rid}.json"
    _write(request, {"id": rid, "workers": workers, "time": time.time()})
    try:
        answer = _wait_reply(reply, timeout_s, poll_s)
        if answer is None:
            try:
                request.unlink()  # not taken on yet: withdrawn, and the driver will never act on it
            except FileNotFoundError:  # taken on: it is being carried out, so its answer will come
                answer = _wait_reply(reply, timeout_s, poll_s)
            else:
                raise ControlError(f"{run_dir}: the driver did not answer within {timeout_s:.0f} s; the request "
                                   "was withdrawn (is the driver stuck? see its log)", exit_code=1)
    except KeyboardInterrupt:
        request.unlink(missing_ok=True)
        raise
    if answer is None:
        raise ControlError(f"{run_dir}: the driver took the request on but did not answer within "
                           f"{2 * timeout_s:.0f} s; see its log for the outcome", exit_code=1)
    return Reply(bool(answer.get("ok")), str(answer.get("message", "")))


def _wait_reply(reply: Path, timeout_s: float, poll_s: float) -> dict | None:
    deadline = time.monotonic() + timeout_s
    while True:
        answer = _read(reply)
        if answer is not None:
            reply.unlink(missing_ok=True)
            return answer
        if time.monotonic() >= deadline:
            return None
        time.sleep(poll_s)
