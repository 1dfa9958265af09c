"""Sandbox fork-server: runs model-written Python programs, one forked child per program, and hands back data only.

This file is executed as a script (`python -s -S server.py WORKDIR DROP_UID HOOKS`) by `minazr.sandbox.executor`, never
imported by the caller, and uses only the standard library (plus its sibling files literals.py and
rules.py, found because a script's own folder is first on sys.path).

Process tree (Linux, as root, where `unshare` is available):

    caller (minazr.sandbox.executor)            never runs model code; parses outputs and computes every verdict
      `- unshare --net --pid --fork     new network namespace (no interfaces up) and PID namespace
           `- this server (PID 1)        preloads the allowed modules once, then loops: read request, fork child
                `- child per request     rlimits, uid/gid 65534, chroot to an empty dir, audit hook, run f

Wire to the caller: length-prefixed JSON on stdin/stdout (never pickle), one request at a time:
    request  {"id": int, "code": str, "inputs": str, "timeout_s": float, "memory_mb": int, "max_output_chars": int}
    reply    {"id": int, "status": "returned"|"error"|"timeout"|"infra", "output": str|None, "error": str|None,
              "cpu_s": float (the child's CPU seconds)}

The child writes raw bytes on its result pipe: b"R" once it is confined, just before any model code runs, then
b"O" + the output's literal text (minazr/sandbox/literals.py) or b"E" + an error line. Everything after b"R" is the
program's: a program can write anything there, so this server only classifies it (output, error, malformed) and
the caller treats it as untrusted data. No expected value, gold answer or verdict ever enters this process.
Whether a failure is the sandbox's fault ("infra") is decided here from what the server saw, not from text:
a child that never wrote b"R" failed before model code ran.

The child arms a deny-by-default audit hook before any model code runs: every audit event outside a short list of
harmless ones (compile/exec used by namedtuple and dataclasses, restricted-attribute reads, id()) raises
PermissionError. That blocks file opens, imports of modules not preloaded here, os.system/fork/exec/kill,
subprocess, sockets, ctypes, marshal and code-object construction, even when a program gets past the static checks.
"""

import builtins
import codecs
import gc
import json
import os
import resource
import select
import signal
import struct
import sys
import time
from typing import NamedTuple

import literals
import rules as sandbox_rules

# Codecs are imported lazily on first use; load the common ones now (nothing can be imported after confinement).
CODECS = ("utf_8 utf_8_sig utf_16 utf_16_le utf_16_be utf_32 utf_32_le utf_32_be ascii latin_1 cp1252 cp437 "
          "idna punycode unicode_escape raw_unicode_escape").split()
for _name in sorted(sandbox_rules.ALLOWED_MODULES) + [f"encodings.{c}" for c in CODECS]:
    __import__(_name)
for _name in CODECS:  # fill the codec registry's cache, so str.encode never needs an import in a child
    codecs.lookup(_name.replace("_", "-"))

# Audit events a running program may raise; everything else is refused. Not object.__getattr__: CPython raises it
# for reads of restricted attributes (__code__, gi_frame, gi_code, tb_frame, f_code), which only walks need (the
# hook lets a plain function's __code__ through, see _make_audit_hook).
ALLOWED_EVENTS = frozenset(
    {"compile", "exec", "object.__setattr__", "object.__delattr__", "builtins.id", "sys._getframe", "array.__new__"}
)
# Modules the standard library itself imports lazily inside allowed modules' functions (enum and re warn,
# functools.singledispatch); importable at run time, never by name in a program (the static check refuses them).
STDLIB_LAZY = frozenset({"warnings", "types", "weakref"})
_REAL_IMPORT = builtins.__import__
NOBODY = 65534
RESULT_FD = 3
DEVNULL = os.open(os.devnull, os.O_RDWR)  # opened once; every child puts it on its stdin/stdout/stderr
HEADER = struct.Struct("<I")
ERROR_CHARS = 300


# ---------------------------------------------------------------- wire to the caller


def read_msg(fd):
    head = _read_exact(fd, HEADER.size)
    if head is None:
        return None
    (n,) = HEADER.unpack(head)
    body = _read_exact(fd, n)
    return None if body is None else json.loads(body)


def _read_exact(fd, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def write_msg(fd, obj):
    body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
    data = HEADER.pack(len(body)) + body
    while data:
        data = data[os.write(fd, data):]


# ---------------------------------------------------------------- child side


class _NullWriter:
    """Stands in for stdout/stderr: prints cost nothing and go nowhere."""

    def write(self, s):
        return len(s)

    def flush(self):
        pass


def _make_audit_hook():
    """The hook closes over its own copies, so a program that reaches this module's globals cannot loosen it.

    Restricted attribute reads (object.__getattr__) are allowed on plain functions only: inspect.signature reads
    __code__ (dataclasses call it), and a code object gives nothing the program's own source does not. Frames,
    generators, coroutines and tracebacks (gi_frame, tb_frame, f_code, ...) stay refused. Setting __code__ is
    refused (it would let a program replace this hook's body); __defaults__ may be set (namedtuple does)."""
    allowed = ALLOWED_EVENTS
    frozen_attrs = frozenset({"__code__", "__globals__", "__closure__", "__builtins__", "__dict__"})
    error = PermissionError
    module_type, function_type = type(sys), type(lambda: None)

    def hook(event, args):
        if event == "object.__getattr__" and type(args[0]) is function_type:
            return
        if event not in allowed:
            raise error(f"sandbox: {event} is not allowed")
        if event == "object.__setattr__" and (args[1] in frozen_attrs or type(args[0]) is module_type):
            raise error(f"sandbox: setting {args[1]} is not allowed")

    return hook


def _sandbox_import(name, globals=None, locals=None, fromlist=(), level=0):
    """The program's own __import__: the allowlist only."""
    if level or name not in sandbox_rules.ALLOWED_MODULES:
        raise ImportError(f"sandbox: import of {name!r} is not allowed")
    return _REAL_IMPORT(name, globals, locals, fromlist, level)


def _stdlib_import(name, globals=None, locals=None, fromlist=(), level=0):
    """The real builtins' __import__ in a child: the allowlist plus what allowed modules import lazily."""
    if level or (name not in sandbox_rules.ALLOWED_MODULES and name not in STDLIB_LAZY):
        raise ImportError(f"sandbox: import of {name!r} is not allowed")
    return _REAL_IMPORT(name, globals, locals, fromlist, level)


def _restricted_builtins():
    ns = dict(builtins.__dict__)
    for name in sandbox_rules.REMOVED_BUILTINS:
        ns.pop(name, None)
    ns["__import__"] = _sandbox_import
    return ns


# Built once here, not in every child: each child has its own copy-on-write copy, and building it there would
# touch (and so copy) hundreds of pages for every program.
RESTRICTED_BUILTINS = _restricted_builtins()
ARGS_NAMESPACE = {"__builtins__": {}, "set": set, "frozenset": frozenset}


class Setup(NamedTuple):
    """How this server confines its children (from its command line)."""

    workdir: str  # the empty, read-only directory each child chroots into
    drop_uid: bool  # the caller is really root: children switch to uid/gid 65534
    hooks: bool  # the audit hook and the import gates; off only in tests that attack the kernel layers directly


def _confine(req, setup):
    """Everything that must hold before model code runs. Order matters: rlimits and chdir before dropping root."""
    os.setpgid(0, 0)
    os.closerange(RESULT_FD + 1, 1 << 16)  # DEVNULL and everything else but the result pipe
    os.chdir(setup.workdir)
    try:
        os.chroot(".")  # the empty, read-only workdir becomes "/": no file on the host is reachable by path
    except OSError:
        pass  # not root and no user namespace: the audit hook still refuses every open (see docs)
    os.chdir("/")
    os.nice(10)  # programs yield the CPU to the trainer (the environment was emptied when the server started)
    cpu = int(req["timeout_s"]) + 1
    mem = int(req["memory_mb"]) * 1024 * 1024
    for limit, value in ((resource.RLIMIT_CPU, (cpu, cpu + 1)), (resource.RLIMIT_AS, (mem, mem)),
                         (resource.RLIMIT_FSIZE, (0, 0)), (resource.RLIMIT_NOFILE, (RESULT_FD + 5, RESULT_FD + 5)),
                         (resource.RLIMIT_CORE, (0, 0)), (resource.RLIMIT_NPROC, (1, 1))):
        resource.setrlimit(limit, value)
    if setup.drop_uid:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    sys.stdout = sys.stderr = _NullWriter()
    sys.stdin = None
    if setup.hooks:
        _arm_hooks()


def _arm_hooks():
    """The Python-level layers, last before model code runs: import gates and the deny-by-default audit hook."""
    # Code that a program gets executed with fresh globals (through a stdlib helper that calls exec) sees the real
    # builtins module, not the program's restricted namespace: give that one the same import gate, and no open().
    builtins.__import__ = _stdlib_import
    for name in ("open", "breakpoint", "input", "help", "exit", "quit"):
        builtins.__dict__.pop(name, None)
    sys.addaudithook(_make_audit_hook())


def _parse_args(inputs):
    """`inputs` is argument-list source text such as "[1, 2], 3" or "x=1". The caller has already checked that it
    is an argument list of literals (minazr/sandbox/code_check.py), and this child is where model code runs anyway, so
    evaluating it here with no builtins is safe, and cheaper than building an AST."""
    return eval(f"(lambda *a, **k: (a, k))({inputs})", ARGS_NAMESPACE)


def _load_f(code, hooks=True):
    ns = {"__builtins__": RESTRICTED_BUILTINS if hooks else builtins.__dict__, "__name__": "__sandbox__"}
    exec(compile(code, "<program>", "exec"), ns)
    f = ns.get("f")
    if not callable(f):
        raise NameError("program does not define a callable f")
    return f


def _error_line(e):
    """`Type: message` of a program's exception (its __str__ is program code too, so it may fail)."""
    try:
        return f"{type(e).__name__}: {str(e)[:200]}"
    except BaseException:
        return f"{type(e).__name__}: (message could not be shown)"


def child_main(req, setup):
    write, exit_ = os.write, os._exit  # captured before model code runs: a program may replace module attributes
    try:
        _confine(req, setup)
    except BaseException as e:
        write(RESULT_FD, b"S" + f"{type(e).__name__}: {e}".encode("utf-8", "backslashreplace"))
        exit_(0)
    write(RESULT_FD, b"R")  # from here on, what the pipe holds is the program's
    try:
        args, kwargs = _parse_args(req["inputs"])  # before any of the program's own code has run
        f = _load_f(req["code"], setup.hooks)
        frame = b"O" + literals.serialize(f(*args, **kwargs), req["max_output_chars"]).encode("utf-8")
    except RecursionError:
        frame = b"ERecursionError: maximum recursion depth exceeded"
    except MemoryError:
        frame = b"EMemoryError: memory limit exceeded"
    except BaseException as e:  # the program's failure is a normal, reported outcome
        frame = b"E" + _error_line(e).encode("utf-8", "backslashreplace")
    try:
        write(RESULT_FD, frame)
    finally:
        exit_(0)


# ---------------------------------------------------------------- server side


def _describe_exit(status):
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        why = {signal.SIGXCPU: "CPU time limit", signal.SIGXFSZ: "file size limit (writes are not allowed)",
               signal.SIGSEGV: "segmentation fault", signal.SIGKILL: "killed"}.get(sig, "signal")
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"program killed by {name} ({why})"
    return f"program exited with code {os.WEXITSTATUS(status)} before returning"


def run_one(req, setup):
    """Fork a child for one request, collect what it writes, and classify it (see the module docstring)."""
    try:
        r, w = os.pipe()
        pid = os.fork()
    except OSError as e:
        return {"status": "infra", "error": f"fork failed: {e}"}
    if pid == 0:
        for fd in (0, 1, 2):  # first, in case DEVNULL is fd 3 (it is, when the server started with only 0-2)
            os.dup2(DEVNULL, fd)
        os.dup2(w, RESULT_FD)
        child_main(req, setup)  # closes every other descriptor (r, w, DEVNULL) before model code
    os.close(w)
    data, timed_out = _collect(r, pid, req)
    _kill_group(pid)
    _, status, usage = os.wait4(pid, 0)
    os.close(r)
    _reap_orphans()
    reply = _classify(bytes(data), status, timed_out, req)
    reply["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 6)  # the kernel's count for the child: its cost
    return reply


def _collect(r, pid, req):
    """Read the child's pipe until it exits, the timeout passes, or it wrote more than any honest result."""
    pidfd = os.pidfd_open(pid)
    deadline = time.monotonic() + req["timeout_s"]
    limit = 4 * req["max_output_chars"] + 4 * ERROR_CHARS + 16  # UTF-8 is at most 4 bytes a character
    data, timed_out, fds = bytearray(), False, [r, pidfd]
    while len(data) <= limit:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        ready, _, _ = select.select(fds, [], [], remaining)
        if r in ready and not _read_into(r, data):
            fds.remove(r)
        if pidfd in ready:  # the child exited: take what is left in the pipe without waiting for more
            while r in fds and select.select([r], [], [], 0)[0] and _read_into(r, data):
                pass
            break
    os.close(pidfd)
    return data, timed_out


def _classify(data, status, timed_out, req):
    if not data.startswith(b"R"):  # no model code ran: whatever went wrong is the sandbox's fault
        if data.startswith(b"S"):
            why = "sandbox setup failed: " + data[1:ERROR_CHARS].decode("utf-8", "replace")
        else:
            why = "sandbox setup timed out" if timed_out else f"sandbox setup failed ({_describe_exit(status)})"
        return {"status": "infra", "error": why}
    tag, payload = data[1:2], data[2:]
    if timed_out:
        return {"status": "timeout", "error": f"timeout after {req['timeout_s']:g}s"}
    if len(data) > 4 * req["max_output_chars"] + 4 * ERROR_CHARS + 16:
        return {"status": "error", "error": "output too large"}
    if tag == b"":
        return {"status": "error", "error": _describe_exit(status)}
    if tag == b"E":
        return {"status": "error", "error": payload[:4 * ERROR_CHARS].decode("utf-8", "replace")[:ERROR_CHARS]}
    if tag == b"O":
        try:
            return {"status": "returned", "output": payload.decode("utf-8")}
        except UnicodeDecodeError:
            pass
    return {"status": "error", "error": "malformed result from the program"}


def _read_into(fd, data):
    chunk = os.read(fd, 65536)
    data += chunk
    return bool(chunk)


def _kill_group(pid):
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass


def _reap_orphans():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main():
    setup = Setup(sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1")
    if not setup.hooks:  # tests attack the kernel layers with these (nothing can be imported in a chrooted child)
        import socket  # noqa: F401
        import _thread  # noqa: F401
    # As PID 1 of its namespace, this server ignores every signal from inside it that it has no handler for; Python
    # installs one for SIGINT, which a child with the server's uid (non-root mode) could send to fake a crash.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.environ.clear()  # children inherit nothing (the hash seed was read when this interpreter started)
    gc.freeze()  # everything loaded so far is never collected, so children do not copy it on write for the GC
    # Announce readiness so the caller can tell a broken start from a slow one.
    write_msg(1, {"ready": True, "pid_namespace": os.getpid() == 1, "drop_uid": setup.drop_uid,
                  "hooks": setup.hooks})
    while True:
        req = read_msg(0)
        if req is None:
            return
        reply = run_one(req, setup)
        reply["id"] = req["id"]
        write_msg(1, reply)
        del req, reply  # nothing of one request stays reachable in the next child


if __name__ == "__main__":
    main()
