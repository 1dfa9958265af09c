"""Sandboxed execution of model-written Python programs, and the judge of every AZR reward.

    from minazr.sandbox.executor import run_program
    run_program("def f(a, b):\n    return a + b", "[1, 2], [3]")   # ExecResult(ok=True, output='[1, 2, 3]', ...)

A program is first checked statically (minazr/sandbox/code_check.py), then run by a pool of fork-servers
(minazr/sandbox/server.py), each a separate interpreter in its own network and PID namespace with its own hash seed.

The judge is this process, never the sandbox. A sandbox child runs f and hands back data only: the literal text
of its return value (minazr/sandbox/literals.py) or an error line. No expected value ever enters a sandbox; this process
parses what comes back with a safe literal reader and computes every verdict itself:
  - Run:   f(*inputs) must return a plain literal, and, with `runs` = 2, the exact same text from two servers with
           different hash seeds (catches hash(), id(), set-order and address dependence);
  - Check: f(*inputs) == expected by value, computed here; the program also runs twice, and two different
           outputs make the result non-deterministic (no verdict) instead of a coin flip;
  - Equal: two literals equal by value, computed here without any sandbox (deduction answers).
Everything a server sends is untrusted data; what a program writes can at worst be its own (wrong) output.
A sandbox failure (`infra`) is decided here from what was observed: a server that died, answered late or out of
turn, sent a malformed message, or reported that its child failed before model code ran. Such a server is retired
and replaced, and the job fails with infra=True (the self-play step drops it instead of scoring it).

The executor never raises for any program, and never waits past the timeout plus its grace period.
"""

import atexit
import itertools
import json
import logging
import os
import re
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
from dataclasses import dataclass, field, replace
from pathlib import Path

from minazr.sandbox import code_check, literals

log = logging.getLogger(__name__)
SERVER_SCRIPT = Path(__file__).with_name("server.py")
GRACE_S = 2.0  # allowed on top of a program's timeout for fork, IPC and a busy machine, before a server is retired
START_TIMEOUT_S = 20.0
MAX_TIMEOUT_S = 600.0
GROUP_IN_FLIGHT = 2  # jobs of one budget group running at once (Executor.map)
MAX_MESSAGE_BYTES = 1 << 24  # a server's reply is at most a few times max_output_chars
INFRA_PREFIX = "sandbox failure:"  # how infra errors read in logs; code tests ExecResult.infra, never this text
HEADER = struct.Struct("<I")  # length prefix of each JSON message, as in server.py
ERROR_TYPE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,63}: ")  # how an honest program error line starts
SELF_TEST = {"code": "def f(x):\n    return [x, {'b', 'a'}]", "inputs": "1", "expected": "[1, {'a', 'b'}]"}


@dataclass(frozen=True)
class ExecResult:
    ok: bool  # the program ran and returned a plain literal (for Check: in every run, with the same output)
    output: str | None = None  # literal text of f(*args) (minazr/sandbox/literals.py: canonical, one text per value)
    error: str | None = None  # short reason when not ok
    match: bool | None = None  # for Check / Equal: the verdict, computed in this process
    infra: bool = False  # the sandbox failed, not the program: decided from what the executor observed
    nondeterministic: bool = False  # two runs returned different outputs (or one failed): no verdict possible
    timed_out: bool = False  # a run hit the timeout (as the server observed it)
    seeds: tuple[int, ...] = field(default=(), compare=False, repr=False)  # hash seeds of the runs behind it
    # server-seconds it cost: CPU seconds of each run, a timed-out run at its full timeout (see Executor.map)
    cost_s: float = field(default=0.0, compare=False, repr=False)
    server_s: float = field(default=0.0, compare=False, repr=False)  # wall seconds its runs held their servers
    over_budget: bool = False  # not run: its group had spent its validation budget (Executor.map)


@dataclass(frozen=True)
class Run:
    """Run f(*inputs) and return its output; `runs` = 2 also demands the same output from two separate servers
    (None: the executor's `determinism_runs`). `avoid`: hash seeds not to run under (a confirmation on new seeds
    of an output already seen under those), honoured while the pool has enough other servers."""

    code: str
    inputs: str
    runs: int | None = None
    avoid: frozenset[int] = frozenset()
    probe: bool = False  # a probe of the program (tasks/probes.py), not a gold answer: self-play does not confirm it
    timeout_s: float | None = None  # this job's timeout, when shorter than the batch's (probe runs)
    group: int | None = field(default=None, compare=False)  # whose validation budget it spends (Executor.map)


@dataclass(frozen=True)
class Check:
    """Does f(*inputs) equal the literal `expected` by value? Used for abduction and induction answers. The program
    never sees `expected`; it runs `runs` times (None: `determinism_runs`) and must return the same output."""

    code: str
    inputs: str
    expected: str
    runs: int | None = None
    timeout_s: float | None = None
    group: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Equal:
    """Are two Python literals, given as source text, equal by value? Used for deduction answers (no sandbox)."""

    a: str
    b: str


Job = Run | Check | Equal


class SandboxError(RuntimeError):
    """A sandbox server died, answered late or out of turn, or sent a malformed message (it is then retired)."""


class _Server:
    """One fork-server process; one request at a time, each with an id that its reply must carry."""

    def __init__(self, hash_seed: int, isolate: bool, hooks: bool = True):
        self.hash_seed = hash_seed
        self.workdir = tempfile.mkdtemp(prefix="minazr-sandbox-")
        os.chmod(self.workdir, 0o555)  # empty and read-only for the unprivileged child
        drop_uid = "1" if os.geteuid() == 0 else "0"
        cmd = [sys.executable, "-s", "-S", str(SERVER_SCRIPT), self.workdir, drop_uid, "1" if hooks else "0"]
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": str(hash_seed),
               "PYTHONDONTWRITEBYTECODE": "1"}
        self.isolated = isolate and _namespace_prefix() is not None
        if self.isolated:
            cmd = _namespace_prefix() + cmd
        self.ids = itertools.count()
        self.retired = False
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env, start_new_session=True, close_fds=True)
        try:
            hello = self._read(START_TIMEOUT_S)
            if not hello.get("ready"):
                raise SandboxError(f"sandbox server did not start: {hello}")
            self.info = hello
            self._self_test()
        except BaseException:
            self.close()
            raise

    def _self_test(self) -> None:
        """A known program must come back as its known output, or the sandbox cannot judge anything."""
        req = {"code": SELF_TEST["code"], "inputs": SELF_TEST["inputs"], "timeout_s": 10.0, "memory_mb": 512,
               "max_output_chars": 100}
        reply = self.call(req, START_TIMEOUT_S)
        reply.pop("cpu_s", None)
        if reply != {"status": "returned", "output": SELF_TEST["expected"], "error": None}:
            raise SandboxError(f"sandbox self-test failed: {reply}")

    def call(self, req: dict, timeout_s: float) -> dict:
        """Send one request and return its checked reply; raises SandboxError for anything out of protocol."""
        return self.receive(self.send(req), timeout_s)

    def send(self, req: dict) -> int:
        rid = next(self.ids)
        try:
            self.proc.stdin.write(_encode({**req, "id": rid}))
            self.proc.stdin.flush()
        except (OSError, ValueError) as e:  # broken pipe, or a closed file after a failed restart
            raise SandboxError(f"sandbox server gone: {e}") from None
        return rid

    def receive(self, rid: int, timeout_s: float) -> dict:
        return _checked(self._read(timeout_s), rid)

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
                if need > MAX_MESSAGE_BYTES:
                    raise SandboxError("sandbox server sent an oversized message")
        try:
            return json.loads(bytes(buf[HEADER.size:]))
        except ValueError:
            raise SandboxError("sandbox server sent a malformed message") from None

    def alive(self) -> bool:
        return not self.retired and self.proc.poll() is None

    def close(self) -> None:
        """Kill the server and its children; safe to call twice. A closed server is never used again."""
        self.retired = True
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


STATUSES = {"returned", "error", "timeout", "infra"}


def _checked(reply, rid: int) -> dict:
    """The reply without its id, if it is the answer to request `rid` with every field of the expected type."""
    if not isinstance(reply, dict) or reply.get("id") != rid:
        raise SandboxError(f"sandbox server answered out of turn (expected id {rid})")
    status, output, error = reply.get("status"), reply.get("output"), reply.get("error")
    if status not in STATUSES or not isinstance(output, (str, type(None))) or not isinstance(error, (str, type(None))) \
            or (status == "returned") != isinstance(output, str):
        raise SandboxError("sandbox server sent a malformed reply")
    return {"status": status, "output": output, "error": error, "cpu_s": reply.get("cpu_s")}  # _cost checks it


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
    """A pool of sandbox servers and the judge. Thread-safe; `map` runs a batch concurrently across servers."""

    def __init__(self, workers: int | None = None, memory_mb: int = 512, max_output_chars: int = 10_000,
                 determinism_runs: int = 2, static_check: bool = True, isolate: bool = True,
                 grace_s: float = GRACE_S, _hooks: bool = True):
        if sys.platform != "linux":
            raise RuntimeError("the minAZR sandbox needs Linux (rlimits, namespaces, pidfd)")
        # two servers per core keep the cores busy while others fork; at least two, since determinism runs need both
        self.workers = max(2, workers or 2 * (os.cpu_count() or 1))
        self.memory_mb = memory_mb
        self.max_output_chars = max_output_chars
        self.determinism_runs = determinism_runs
        self.static_check = static_check
        self.isolate = isolate
        self.grace_s = grace_s
        self._hooks = _hooks  # tests only: False drops the audit hook and import gates (kernel layers alone)
        self._seeds: set[int] = set()  # every seed ever used (a replacement never reuses one)
        self._live_seeds: set[int] = set()  # seeds of the servers in the pool now
        self._free: list[_Server] = []
        self._size = self.workers  # servers alive or being restarted
        self._lock = threading.Condition()
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sandbox")
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

    def map(self, jobs: list[Job], timeout_s: float = 5.0, budgets: dict | None = None) -> list[ExecResult]:
        """Run a batch of jobs concurrently; results come back in order.

        `budgets`: group -> server-seconds left to the jobs of that group (Job.group), spent as they finish (a
        run's CPU seconds, a timed-out run's full timeout) and updated in place. A job whose group has nothing
        left is not run: its result has over_budget=True. Groups take turns, and at most GROUP_IN_FLIGHT jobs of
        one group run at once, so a group overspends by at most the cost of those."""
        if budgets is None:
            return list(self._pool.map(lambda j: self.submit(j, timeout_s), jobs))
        turn = threading.Condition()
        running: dict = {}

        def one(job: Job) -> ExecResult:
            group = getattr(job, "group", None)
            if group not in budgets:
                return self.submit(job, timeout_s)
            with turn:
                while running.get(group, 0) >= GROUP_IN_FLIGHT and budgets[group] > 0:
                    turn.wait()
                if budgets[group] <= 0:
                    return ExecResult(False, error="validation budget spent", over_budget=True)
                running[group] = running.get(group, 0) + 1
            res = ExecResult(False, error="sandbox failure: internal error", infra=True, cost_s=0.0)
            try:
                res = self.submit(job, timeout_s)
            finally:
                with turn:  # charged before any waiter of the group looks at the budget
                    budgets[group] -= res.cost_s
                    running[group] -= 1
                    turn.notify_all()
            return res

        order = _round_robin(jobs)
        done = list(self._pool.map(lambda i: one(jobs[i]), order))
        out: list[ExecResult | None] = [None] * len(jobs)
        for i, res in zip(order, done):
            out[i] = res
        return out

    def submit(self, job: Job, timeout_s: float = 5.0) -> ExecResult:
        try:
            return self._do(job, float(timeout_s) if isinstance(timeout_s, (int, float)) else timeout_s)
        except SandboxError as e:
            return ExecResult(False, error=f"{INFRA_PREFIX} {e}", infra=True)
        except Exception as e:  # the executor never raises for model input; a bug here is logged loudly
            log.exception("sandbox: internal error")
            return ExecResult(False, error=f"{INFRA_PREFIX} internal error: {type(e).__name__}: {e}", infra=True)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            servers, self._free = self._free, []
        self._pool.shutdown(wait=False)
        for s in servers:
            s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------ the judge

    def _do(self, job: Job, timeout_s: float) -> ExecResult:
        if getattr(job, "timeout_s", None) is not None:
            timeout_s = float(job.timeout_s) if isinstance(job.timeout_s, (int, float)) else job.timeout_s
        if not (isinstance(timeout_s, float) and 0 < timeout_s <= MAX_TIMEOUT_S):
            return ExecResult(False, error=f"invalid timeout {timeout_s!r} (0 < timeout_s <= {MAX_TIMEOUT_S:g})")
        if isinstance(job, Equal):
            return _equal(job)
        reason = code_check.check_program(job.code) if self.static_check else None
        reason = reason or code_check.check_inputs(job.inputs)
        if reason:
            return ExecResult(False, error=f"rejected: {reason}", match=False if isinstance(job, Check) else None)
        if isinstance(job, Check):
            return self._check(job, timeout_s)
        return self._runs(job.code, job.inputs, job.runs, timeout_s, job.avoid)

    def _runs(self, code: str, inputs: str, runs: int | None, timeout_s: float,
              avoid: frozenset[int] = frozenset()) -> ExecResult:
        """Run f(*inputs) in `runs` servers at once (different hash seeds); their outputs must agree exactly."""
        runs = max(1, min(runs or self.determinism_runs, 2))
        results, seeds = self._call([{"code": code, "inputs": inputs}] * runs, timeout_s, avoid)
        return replace(_agree(results), seeds=seeds, cost_s=sum(r.cost_s for r in results),
                       server_s=sum(r.server_s for r in results))

    def _check(self, job: Check, timeout_s: float) -> ExecResult:
        """The verdict f(*inputs) == expected, computed here: the sandbox only ever sees code and inputs."""
        try:
            expected = literals.parse(job.expected)
        except literals.NotLiteral:
            return ExecResult(False, error="rejected: expected value is not a Python literal", match=False)
        res = self._runs(job.code, job.inputs, job.runs, timeout_s)
        match = res.ok and literals.parse(res.output) == expected  # both plain builtin values: == runs no program
        return replace(res, match=match)

    def _call(self, reqs: list[dict], timeout_s: float, avoid: frozenset[int] = frozenset()) \
            -> tuple[list[ExecResult], tuple[int, ...]]:
        """Send each request to its own server, so they run at the same time, then collect the replies in order.
        Returns the results and the hash seeds they ran under."""
        limits = {"timeout_s": timeout_s, "memory_mb": self.memory_mb, "max_output_chars": self.max_output_chars}
        servers = self._acquire(len(reqs), avoid)
        seeds = tuple(srv.hash_seed for srv in servers)
        try:
            t0 = time.monotonic()
            sent = [self._guard(srv, srv.send, {**req, **limits}) for srv, req in zip(servers, reqs)]
            deadline = t0 + timeout_s + self.grace_s
            replies, held = [], []
            for srv, rid in zip(servers, sent):
                replies.append(self._guard(srv, srv.receive, rid, max(0.0, deadline - time.monotonic()))
                               if isinstance(rid, int) else rid)
                held.append(time.monotonic() - t0)
            return [self._result(r, timeout_s, h) if isinstance(r, dict) else replace(r, cost_s=timeout_s, server_s=h)
                    for r, h in zip(replies, held)], seeds
        finally:
            self._release(servers)

    def _guard(self, server: _Server, fn, *args):
        """fn(*args), or an infra ExecResult after retiring `server` if it broke the protocol."""
        try:
            return fn(*args)
        except SandboxError as e:
            log.warning("sandbox: %s; retiring that server", e)
            server.close()  # a late or confused server never serves another request
            return ExecResult(False, error=f"{INFRA_PREFIX} {e}", infra=True)

    def _result(self, reply: dict, timeout_s: float, held_s: float = 0.0) -> ExecResult:
        """Turn a server's reply (untrusted in everything but its status) into a result for one run."""
        return replace(self._outcome(reply), cost_s=_cost(reply, timeout_s), server_s=held_s)

    def _outcome(self, reply: dict) -> ExecResult:
        status = reply["status"]
        if status == "infra":
            log.warning("sandbox: %s", reply["error"])
            return ExecResult(False, error=f"{INFRA_PREFIX} {reply['error']}", infra=True)
        if status == "timeout":
            return ExecResult(False, error=reply["error"], timed_out=True)
        if status == "error":
            return ExecResult(False, error=_program_error(reply["error"]))
        output = reply["output"]
        if len(output) > self.max_output_chars:
            return ExecResult(False, error=f"output too large ({len(output)} > {self.max_output_chars} chars)")
        try:  # the child's text is untrusted: keep only the canonical text of the value it denotes
            return ExecResult(True, literals.canonical(output, self.max_output_chars))
        except literals.NotLiteral as e:
            return ExecResult(False, error=f"output is not a literal: {e}")

    # ------------------------------------------------------------ the pool

    def _acquire(self, n: int, avoid: frozenset[int] = frozenset()) -> list[_Server]:
        """n free servers, none under a hash seed in `avoid` while enough other servers exist; waits for them."""
        with self._lock:
            while True:
                if self._closed:
                    raise RuntimeError("executor is closed")
                if self._size < n:
                    raise SandboxError(f"only {self._size} sandbox servers left (need {n}); see the log")
                if len(self._live_seeds - avoid) < n:
                    avoid = frozenset()  # a pool this small cannot offer new seeds: run where it can
                eligible = [srv for srv in self._free if srv.hash_seed not in avoid]
                if len(eligible) >= n:
                    taken = eligible[:n]
                    self._free = [srv for srv in self._free if srv not in taken]
                    return taken
                self._lock.wait()

    def _release(self, servers: list[_Server]) -> None:
        healthy = []
        for server in servers:
            if server.alive():
                healthy.append(server)
                continue
            server.close()
            with self._lock:
                self._live_seeds.discard(server.hash_seed)
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
        server = _Server(seed, self.isolate, self._hooks)
        with self._lock:
            self._live_seeds.add(seed)
        return server


def _cost(reply: dict, timeout_s: float) -> float:
    """Server-seconds of one run: the child's CPU seconds as the server counted them (the kernel's figure,
    capped at the timeout), the whole timeout for a run that hit it or a count that is not a number."""
    cpu = reply.get("cpu_s")
    if reply.get("status") == "timeout" or not isinstance(cpu, (int, float)) or isinstance(cpu, bool) \
            or not 0 <= cpu < float("inf"):
        return timeout_s
    return min(float(cpu), timeout_s)


def _round_robin(jobs: list[Job]) -> list[int]:
    """Job indices with the groups taking turns (jobs without a group first, in order)."""
    by_group: dict = {}
    for i, job in enumerate(jobs):
        by_group.setdefault(getattr(job, "group", None), []).append(i)
    order = by_group.pop(None, [])
    queues = list(by_group.values())
    for k in range(max(map(len, queues), default=0)):
        order += [q[k] for q in queues if k < len(q)]
    return order


def _agree(results: list[ExecResult]) -> ExecResult:
    """One result from the runs of one program: a sandbox failure if any; the first failure if all failed; the
    output if all returned the same one; else non-deterministic (some failed and some returned, or outputs differ)."""
    infra = next((r for r in results if r.infra), None)
    if infra:
        return infra
    failed = [r for r in results if not r.ok]
    if len(failed) == len(results):
        return failed[0]
    if failed:
        return ExecResult(False, error=f"non-deterministic: one run failed ({failed[0].error}), another returned",
                          nondeterministic=True, timed_out=any(r.timed_out for r in failed))
    if any(r.output != results[0].output for r in results[1:]):
        return ExecResult(False, error="non-deterministic: two runs returned different values",
                          nondeterministic=True)
    return results[0]


def _equal(job: Equal) -> ExecResult:
    if not all(isinstance(x, str) and len(x) <= code_check.MAX_CODE_CHARS for x in (job.a, job.b)):
        return ExecResult(False, error="answer is not a string of acceptable length")
    try:
        return ExecResult(True, match=literals.parse(job.a) == literals.parse(job.b))
    except literals.NotLiteral as e:
        return ExecResult(False, error=f"not a literal: {e}", match=False)


def _program_error(text: str | None) -> str:
    """A program's error line, as data: the exception type must look like one, and the line stays short."""
    text = (text or "program failed").replace("\n", " ")[:300]
    if ERROR_TYPE.match(text) or text in ("output too large", "malformed result from the program") \
            or text.startswith("program "):
        return text
    return "program error: " + text


_default: Executor | None = None
_default_lock = threading.Lock()


def from_config(cfg) -> Executor:
    """An executor built from an ExecutorConfig."""
    return Executor(workers=cfg.workers or None, memory_mb=cfg.memory_mb, max_output_chars=cfg.max_output_chars,
                    determinism_runs=cfg.determinism_runs, grace_s=cfg.grace_s)


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
