"""Sandboxed execution of model-written Python programs (the source of every AZR reward).

    from minazr.executor import run_program
    run_program("def f(a, b):\n    return a + b", "[1, 2], [3]")   # ExecResult(ok=True, output='[1, 2, 3]', ...)

A program is first checked statically (minazr/code_check.py), then run by a pool of fork-servers
(minazr/sandbox_server.py), each a separate interpreter in its own network and PID namespace with its own hash seed.
A validation run executes the program on two different servers and requires the same value from both, which
catches non-determinism through hash(), id(), set order or memory addresses. Answer checks (`f(x) == gold`,
value equality of two literals) also run in the sandbox: the caller never evals model text.

The executor never raises for any program, never waits past the timeout plus a small margin, and restarts a
server that died or stopped answering.
"""

import atexit
import json
import logging
import os
import secrets
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from minazr import code_check

log = logging.getLogger(__name__)
SERVER_SCRIPT = Path(__file__).with_name("sandbox_server.py")
MARGIN_S = 2.0  # allowed on top of a program's timeout for fork, IPC and a possible server restart
START_TIMEOUT_S = 20.0
MAX_TIMEOUT_S = 600.0
INFRA_PREFIX = "sandbox failure:"  # errors that are the sandbox's fault, not the program's
HEADER = struct.Struct("<I")  # length prefix of each JSON message, as in sandbox_server.py


@dataclass(frozen=True)
class ExecResult:
    ok: bool  # the program ran and returned (for checks: the comparison itself ran)
    output: str | None = None  # repr of f(*args) for runs
    error: str | None = None  # short reason when not ok
    match: bool | None = None  # for check / equal requests: did the values agree
    canonical: str | None = field(default=None, compare=False, repr=False)  # hash-seed-independent form of output


@dataclass(frozen=True)
class Run:
    """Run f(*inputs) and return repr of the result; `runs` >= 2 also demands the same value in separate servers
    (None: the executor's `determinism_runs`)."""

    code: str
    inputs: str
    runs: int | None = None


@dataclass(frozen=True)
class Check:
    """Does f(*inputs) equal the literal `expected` (by value)? Used for abduction and induction answers."""

    code: str
    inputs: str
    expected: str


@dataclass(frozen=True)
class Equal:
    """Are two Python literals, given as source text, equal by value? Used for deduction answers."""

    a: str
    b: str


Job = Run | Check | Equal


class SandboxError(RuntimeError):
    """A sandbox server died or stopped answering (the request is reported as failed, the server restarted)."""


class _Server:
    """One fork-server process; one request at a time."""

    def __init__(self, hash_seed: int, isolate: bool):
        self.hash_seed = hash_seed
        self.workdir = tempfile.mkdtemp(prefix="minazr-sandbox-")
        os.chmod(self.workdir, 0o555)  # empty and read-only for the unprivileged child
        drop_uid = "1" if os.geteuid() == 0 else "0"
        cmd = [sys.executable, "-s", "-S", str(SERVER_SCRIPT), self.workdir, drop_uid]
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": str(hash_seed),
               "PYTHONDONTWRITEBYTECODE": "1"}
        self.isolated = isolate and _namespace_prefix() is not None
        if self.isolated:
            cmd = _namespace_prefix() + cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env, start_new_session=True, close_fds=True)
        try:
            hello = self._read(START_TIMEOUT_S)
            if not hello.get("ready"):
                raise SandboxError(f"sandbox server did not start: {hello}")
        except BaseException:
            self.close()
            raise
        self.info = hello

    def call(self, req: dict, timeout_s: float) -> dict:
        try:
            self.proc.stdin.write(_encode(req))
            self.proc.stdin.flush()
        except (OSError, ValueError) as e:  # broken pipe, or a closed file after a failed restart
            raise SandboxError(f"sandbox server gone: {e}") from None
        return _checked(self._read(timeout_s))

    def _read(self, timeout_s: float) -> dict:
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        buf = bytearray()
        need = HEADER.size
        while len(buf) < need:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise SandboxError("sandbox server did not answer in time")
            chunk = os.read(fd, need - len(buf))
            if not chunk:
                try:
                    code = self.proc.wait(timeout=1)
                except subprocess.TimeoutExpired:
                    code = "unknown"
                raise SandboxError(f"sandbox server exited (code {code})")
            buf += chunk
            if need == HEADER.size and len(buf) == HEADER.size:
                need += HEADER.unpack(buf)[0]
        try:
            return json.loads(bytes(buf[HEADER.size:]))
        except ValueError:
            raise SandboxError("sandbox server sent a malformed message") from None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        shutil.rmtree(self.workdir, ignore_errors=True)


def _checked(res) -> dict:
    """The server's answer, with every field of the type the caller relies on (a program may forge its result)."""
    ok = isinstance(res, dict) and isinstance(res.get("ok"), bool) \
        and all(isinstance(res.get(k), t) or res.get(k) is None
                for k, t in (("output", str), ("error", str), ("match", bool), ("canonical", str)))
    if not ok:
        return {"ok": False, "output": None, "error": "malformed result from the sandbox", "match": None}
    return res


def _encode(obj: dict) -> bytes:
    body = json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return HEADER.pack(len(body)) + body


_NS_PREFIX: list[str] | None | bool = False  # False: not probed yet


def _namespace_prefix() -> list[str] | None:
    """The `unshare` command that gives a server new network and PID namespaces, or None where the OS refuses."""
    global _NS_PREFIX
    if _NS_PREFIX is not False:
        return _NS_PREFIX
    unshare = shutil.which("unshare")
    candidates = [[unshare, "--net", "--pid", "--fork", "--kill-child"]] if os.geteuid() == 0 else \
        [[unshare, "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child"]]
    _NS_PREFIX = None
    for prefix in candidates if unshare else []:
        probe = subprocess.run(prefix + ["/bin/true"], capture_output=True, timeout=10)
        if probe.returncode == 0:
            _NS_PREFIX = prefix
            break
    if _NS_PREFIX is None:
        log.warning("sandbox: network/PID namespaces unavailable (no unshare or not permitted); relying on the "
                    "audit hook's socket block and rlimits")
    return _NS_PREFIX


class Executor:
    """A pool of sandbox servers. Thread-safe; `map` runs a batch concurrently across servers."""

    def __init__(self, workers: int | None = None, memory_mb: int = 512, max_output_chars: int = 10_000,
                 determinism_runs: int = 2, static_check: bool = True, isolate: bool = True):
        if sys.platform != "linux":
            raise RuntimeError("the minAZR sandbox needs Linux (rlimits, namespaces, pidfd)")
        # two servers per core keep the cores busy while others fork; at least two, since determinism runs need both
        self.workers = max(2, workers or 2 * (os.cpu_count() or 1))
        self.memory_mb = memory_mb
        self.max_output_chars = max_output_chars
        self.determinism_runs = determinism_runs
        self.static_check = static_check
        self.isolate = isolate
        self._seeds: set[int] = set()
        self._free: list[_Server] = []
        self._size = self.workers  # servers alive or being restarted
        self._lock = threading.Condition()
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sandbox")
        self._helpers = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sandbox-io")
        self._closed = False
        try:
            for _ in range(self.workers):
                self._free.append(self._new_server())
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ public API

    def run(self, code: str, inputs: str, timeout_s: float = 5.0, runs: int | None = None) -> ExecResult:
        return self.submit(Run(code, inputs, runs), timeout_s)

    def check(self, code: str, inputs: str, expected: str, timeout_s: float = 5.0) -> ExecResult:
        return self.submit(Check(code, inputs, expected), timeout_s)

    def equal(self, a: str, b: str, timeout_s: float = 5.0) -> ExecResult:
        return self.submit(Equal(a, b), timeout_s)

    def map(self, jobs: list[Job], timeout_s: float = 5.0) -> list[ExecResult]:
        """Run a batch of jobs concurrently; results come back in order."""
        return list(self._pool.map(lambda j: self.submit(j, timeout_s), jobs))

    def submit(self, job: Job, timeout_s: float = 5.0) -> ExecResult:
        try:
            return self._do(job, float(timeout_s) if isinstance(timeout_s, (int, float)) else timeout_s)
        except SandboxError as e:
            return ExecResult(False, error=f"{INFRA_PREFIX} {e}")
        except Exception as e:  # the executor never raises for model input; a bug here is logged loudly
            log.exception("sandbox: internal error")
            return ExecResult(False, error=f"{INFRA_PREFIX} internal error: {type(e).__name__}: {e}")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            servers, self._free = self._free, []
        self._pool.shutdown(wait=False)
        self._helpers.shutdown(wait=False)
        for s in servers:
            s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------ internals

    def _do(self, job: Job, timeout_s: float) -> ExecResult:
        if not (isinstance(timeout_s, float) and 0 < timeout_s <= MAX_TIMEOUT_S):
            return ExecResult(False, error=f"invalid timeout {timeout_s!r} (0 < timeout_s <= {MAX_TIMEOUT_S:g})")
        if isinstance(job, Equal):
            if not all(isinstance(x, str) and len(x) <= code_check.MAX_CODE_CHARS for x in (job.a, job.b)):
                return ExecResult(False, error="answer is not a string of acceptable length")
            return self._call([{"mode": "equal", "a": job.a, "b": job.b}], timeout_s)[0]
        reason = code_check.check_program(job.code) if self.static_check else None
        reason = reason or code_check.check_inputs(job.inputs)
        if reason:
            return ExecResult(False, error=f"rejected: {reason}")
        if isinstance(job, Check):
            if code_check.check_inputs(job.expected):
                return ExecResult(False, error="rejected: expected value is not a Python literal")
            req = {"mode": "check", "code": job.code, "inputs": job.inputs, "expected": job.expected}
            return self._call([req], timeout_s)[0]
        req = {"mode": "run", "code": job.code, "inputs": job.inputs}
        runs = min(job.runs or self.determinism_runs, 2)
        results = self._call([req] * runs, timeout_s)  # concurrently, in different servers
        infra = next((r for r in results if r.error and r.error.startswith(INFRA_PREFIX)), None)
        if infra or not results[0].ok:
            return infra or results[0]
        if runs > 1:
            if not results[1].ok:
                return ExecResult(False, error=f"non-deterministic: second run failed ({results[1].error})")
            if results[0].canonical != results[1].canonical:
                return ExecResult(False, error="non-deterministic: two runs returned different values")
        return results[0]

    def _call(self, reqs: list[dict], timeout_s: float) -> list[ExecResult]:
        """Send each request to its own server at the same time; results in order."""
        limits = {"timeout_s": timeout_s, "memory_mb": self.memory_mb, "max_output_chars": self.max_output_chars}
        servers = self._acquire(len(reqs))
        try:
            if len(reqs) == 1:
                return [self._call_one(servers[0], {**reqs[0], **limits}, timeout_s)]
            futures = [self._helpers.submit(self._call_one, srv, {**req, **limits}, timeout_s)
                       for srv, req in zip(servers, reqs)]
            return [f.result() for f in futures]
        finally:
            self._release(servers)

    def _call_one(self, server: _Server, req: dict, timeout_s: float) -> ExecResult:
        try:
            res = server.call(req, timeout_s + MARGIN_S)
        except SandboxError as e:
            log.warning("sandbox: %s; restarting that server", e)
            return ExecResult(False, error=f"{INFRA_PREFIX} {e}")
        return ExecResult(res["ok"], res.get("output"), res.get("error"), res.get("match"), res.get("canonical"))

    def _acquire(self, n: int) -> list[_Server]:
        with self._lock:
            while True:
                if self._closed:
                    raise RuntimeError("executor is closed")
                if self._size < n:
                    raise SandboxError(f"only {self._size} sandbox servers left (need {n}); see the log")
                if len(self._free) >= n:
                    taken, self._free = self._free[:n], self._free[n:]
                    return taken
                self._lock.wait()

    def _release(self, servers: list[_Server]) -> None:
        healthy = []
        for server in servers:
            if server.alive():
                healthy.append(server)
                continue
            server.close()
            try:
                healthy.append(self._new_server())
            except (SandboxError, OSError) as e:
                log.error("sandbox: could not restart a server (%s); the pool shrinks by one", e)
                with self._lock:
                    self._size -= 1
        with self._lock:
            if self._closed:
                for server in healthy:
                    server.close()
                return
            self._free.extend(healthy)
            self._lock.notify_all()

    def _new_server(self) -> _Server:
        seed = secrets.randbelow(2**32 - 2) + 1
        while seed in self._seeds:
            seed = secrets.randbelow(2**32 - 2) + 1
        self._seeds.add(seed)
        return _Server(seed, self.isolate)


_default: Executor | None = None
_default_lock = threading.Lock()


def from_config(cfg) -> Executor:
    """An executor built from an ExecutorConfig."""
    return Executor(workers=cfg.workers or None, memory_mb=cfg.memory_mb, max_output_chars=cfg.max_output_chars,
                    determinism_runs=cfg.determinism_runs)


def default_executor() -> Executor:
    """The process-wide executor behind run_program (created on first use, closed at exit)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Executor()
            atexit.register(_default.close)
        return _default


def run_program(code: str, inputs: str, timeout_s: float = 5.0) -> ExecResult:
    """Run `f(*inputs)` in the sandbox, twice in separate processes, and return repr of the value (DESIGN.md)."""
    return default_executor().run(code, inputs, timeout_s)
