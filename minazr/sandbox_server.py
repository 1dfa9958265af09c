"""Sandbox fork-server: runs model-written Python programs, one forked child per program.

This file is executed as a script (`python -I -S sandbox_server.py`) by `minazr.executor`, never imported by
the caller, and uses only the standard library so it starts in milliseconds with a scrubbed environment.

Process tree (Linux, as root, where `unshare` is available):

    caller (minazr.executor)            never runs model code
      `- unshare --net --pid --fork     new network namespace (no interfaces up) and PID namespace
           `- this server (PID 1)        preloads the allowed modules once, then loops: read request, fork child
                `- child per request     rlimits, uid/gid 65534, empty read-only cwd, audit hook, run f, write result

The server talks to the caller over stdin/stdout with length-prefixed JSON messages (never pickle):
    request  {"mode": "run"|"check"|"equal", "code", "inputs", "expected", "a", "b",
              "timeout_s", "memory_mb", "max_output_chars"}
    response {"ok": bool, "output": str|None, "error": str|None, "match": bool|None}

The child arms a deny-by-default audit hook before any model code runs: every audit event outside a short list of
harmless ones (compile/exec used by namedtuple and dataclasses, restricted-attribute reads, id()) raises
PermissionError. That blocks file opens, imports of modules not preloaded here, os.system/fork/exec/kill,
subprocess, sockets, ctypes, marshal and code-object construction, even when a program gets past the static checks.
"""

import ast
import json
import os
import resource
import select
import signal
import struct
import sys
import time

PRELOADED = (
    "__future__ math cmath collections collections.abc itertools functools operator string re heapq bisect copy "
    "statistics fractions decimal numbers typing dataclasses enum json textwrap unicodedata array abc keyword "
    "difflib pprint struct base64 binascii zlib contextlib types reprlib graphlib codecs"
).split()
# Codecs are imported lazily on first use; load the common ones now (nothing can be imported after confinement).
CODECS = ("utf_8 utf_8_sig utf_16 utf_16_le utf_16_be utf_32 utf_32_le utf_32_be ascii latin_1 cp1252 cp437 "
          "idna punycode rot_13 unicode_escape raw_unicode_escape hex_codec base64_codec").split()
for _name in PRELOADED + [f"encodings.{c}" for c in CODECS]:
    __import__(_name)

# Modules the program may never import, even when preloaded (checked by the sandbox's own __import__).
BANNED_MODULES = frozenset(
    "logging random multiprocessing pebble subprocess threading datetime time hashlib hmac bcrypt calendar "
    "os sys socket shutil ctypes importlib pathlib signal resource gc inspect asyncio builtins io".split()
)
# Audit events a running program may raise; everything else is refused.
ALLOWED_EVENTS = frozenset(
    {"compile", "exec", "object.__getattr__", "object.__setattr__", "object.__delattr__", "builtins.id",
     "sys._getframe", "array.__new__"}
)
# Builtins removed from the program's namespace (the static check bans them too; this is the second layer).
REMOVED_BUILTINS = ("open", "exec", "eval", "compile", "globals", "locals", "vars", "input", "breakpoint",
                    "help", "exit", "quit", "memoryview")
NOBODY = 65534
RESULT_FD = 3
HEADER = struct.Struct("<I")


# ---------------------------------------------------------------- wire


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
    body = json.dumps(obj, ensure_ascii=False).encode("utf-8", "replace")
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
    """The hook closes over its own copies, so a program that reaches this module's globals cannot loosen it."""
    allowed = ALLOWED_EVENTS
    frozen_attrs = frozenset({"__code__", "__defaults__", "__kwdefaults__", "__globals__", "__closure__",
                              "__builtins__", "__dict__"})
    error = PermissionError
    module_type = type(sys)

    def hook(event, args):
        if event not in allowed:
            raise error(f"sandbox: {event} is not allowed")
        if event == "object.__setattr__" and (args[1] in frozen_attrs or type(args[0]) is module_type):
            raise error(f"sandbox: setting {args[1]} is not allowed")

    return hook


def _sandbox_import(name, globals=None, locals=None, fromlist=(), level=0):
    root = name.partition(".")[0]
    if level or root in BANNED_MODULES or (root.startswith("_") and root != "__future__"):
        raise ImportError(f"sandbox: import of {name!r} is not allowed")
    if name not in sys.modules:
        raise ImportError(f"sandbox: module {name!r} is not available (preloaded: {', '.join(PRELOADED)})")
    return __import__(name, globals, locals, fromlist, level)


def _restricted_builtins():
    import builtins

    ns = dict(builtins.__dict__)
    for name in REMOVED_BUILTINS:
        ns.pop(name, None)
    ns["__import__"] = _sandbox_import
    return ns


def _confine(req, workdir, drop_uid):
    """Everything that must hold before model code runs. Order matters: rlimits and chdir before dropping root."""
    os.setpgid(0, 0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(RESULT_FD + 1, 1 << 16)
    os.chdir(workdir)
    try:
        os.chroot(".")  # the empty, read-only workdir becomes "/": no file on the host is reachable by path
    except OSError:
        pass  # not root and no user namespace: the audit hook still refuses every open (see README)
    os.chdir("/")
    os.nice(10)  # programs yield the CPU to the trainer
    os.environ.clear()
    cpu = int(req["timeout_s"]) + 1
    mem = int(req["memory_mb"]) * 1024 * 1024
    for limit, value in ((resource.RLIMIT_CPU, (cpu, cpu + 1)), (resource.RLIMIT_AS, (mem, mem)),
                         (resource.RLIMIT_FSIZE, (0, 0)), (resource.RLIMIT_NOFILE, (RESULT_FD + 5, RESULT_FD + 5)),
                         (resource.RLIMIT_CORE, (0, 0)), (resource.RLIMIT_NPROC, (1, 1))):
        resource.setrlimit(limit, value)
    if drop_uid:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    sys.stdout = sys.stderr = _NullWriter()
    sys.stdin = None
    sys.addaudithook(_make_audit_hook())


def _parse_args(inputs):
    """`inputs` is argument-list source text such as "[1, 2], 3" or "x=1"; only literals are accepted."""
    call = ast.parse(f"f({inputs})", mode="eval").body
    if not isinstance(call, ast.Call) or any(isinstance(a, ast.Starred) for a in call.args) \
            or any(k.arg is None for k in call.keywords):
        raise ValueError("inputs must be a plain argument list")
    args = [ast.literal_eval(a) for a in call.args]
    kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    return args, kwargs


def _load_f(code):
    ns = {"__builtins__": _restricted_builtins(), "__name__": "__sandbox__"}
    exec(compile(code, "<program>", "exec"), ns)
    f = ns.get("f")
    if not callable(f):
        raise NameError("program does not define a callable f")
    return f


PLAIN = (int, float, complex, str, bytes, bool, type(None))
CONTAINERS = {"frozenset": frozenset, "set": set, "tuple": tuple, "list": list, "dict": dict}


def _read_value(text):
    """A value from its repr: a Python literal, or frozenset(...)/set() of one (reprs that literal_eval refuses)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        node = ast.parse(text.strip(), mode="eval").body
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CONTAINERS \
                and not node.keywords and len(node.args) <= 1:
            return CONTAINERS[node.func.id](*(ast.literal_eval(a) for a in node.args))
        raise


def _values_equal(a, b):
    """Value equality of two values given as source text; falls back to text equality when unreadable."""
    try:
        return _read_value(a) == _read_value(b)
    except Exception:
        return a.strip() == b.strip()


def _plain(value):
    """True when value is built only from exact builtin literal types, so == cannot be overridden by a program."""
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t in PLAIN:
            continue
        if t in (list, tuple, set, frozenset):
            stack.extend(v)
        elif t is dict:
            stack.extend(v.keys())
            stack.extend(v.values())
        else:
            return False
    return True


def _canonical(value, path=frozenset()):
    """A text form equal for equal values whatever the hash seed: set elements and dict items sorted.
    `path` holds the containers being printed, so a self-referential value prints `...` as repr does."""
    if id(value) in path:
        return "..."
    inner = path | {id(value)}
    t = type(value)
    if isinstance(value, (set, frozenset)):
        return f"{t.__name__}{{{', '.join(sorted(_canonical(v, inner) for v in value))}}}"
    if isinstance(value, dict):
        items = sorted(f"{_canonical(k, inner)}: {_canonical(v, inner)}" for k, v in value.items())
        return f"{t.__name__}{{{', '.join(items)}}}"
    if isinstance(value, (list, tuple)):
        return f"{t.__name__}[{', '.join(_canonical(v, inner) for v in value)}]"
    return repr(value)


def _evaluate(req):
    mode = req["mode"]
    if mode == "equal":
        return {"ok": True, "output": None, "error": None, "match": bool(_values_equal(req["a"], req["b"]))}
    f = _load_f(req["code"])
    args, kwargs = _parse_args(req["inputs"])
    value = f(*args, **kwargs)
    if mode == "check":
        # A program's own __eq__ must not decide: compare only values made of builtin literal types.
        expected = _read_value(req["expected"])
        return {"ok": True, "output": None, "error": None, "match": _plain(value) and value == expected}
    out = repr(value)
    if len(out) > req["max_output_chars"]:
        return {"ok": False, "output": None, "error": f"output too large ({len(out)} > {req['max_output_chars']} chars)",
                "match": None}
    canon = _canonical(value)
    if len(canon) > 4 * req["max_output_chars"]:
        canon = out
    return {"ok": True, "output": out, "error": None, "match": None, "canonical": canon}


def child_main(req, workdir, drop_uid):
    try:
        try:
            _confine(req, workdir, drop_uid)
        except BaseException as e:
            write_msg(RESULT_FD, {"ok": False, "output": None, "match": None,
                                  "error": f"sandbox setup failed: {type(e).__name__}: {e}"})
            return
        try:
            res = _evaluate(req)
        except RecursionError:
            res = {"ok": False, "output": None, "error": "RecursionError: maximum recursion depth exceeded",
                   "match": None}
        except MemoryError:
            res = {"ok": False, "output": None, "error": "MemoryError: memory limit exceeded", "match": None}
        except BaseException as e:  # the program's failure is a normal, reported outcome
            res = {"ok": False, "output": None, "error": f"{type(e).__name__}: {str(e)[:200]}", "match": None}
        write_msg(RESULT_FD, res)
    finally:
        os._exit(0)


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


def run_one(req, workdir, drop_uid):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        if w != RESULT_FD:
            os.dup2(w, RESULT_FD)
            os.close(w)
        child_main(req, workdir, drop_uid)
    os.close(w)
    pidfd = os.pidfd_open(pid)
    deadline = time.monotonic() + req["timeout_s"]
    limit = 4 * req["max_output_chars"] + 4096
    data, timed_out = bytearray(), False
    fds = [r, pidfd]
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
    _kill_group(pid)
    _, status = os.waitpid(pid, 0)
    os.close(r)
    os.close(pidfd)
    _reap_orphans()
    if timed_out:
        return {"ok": False, "output": None, "error": f"timeout after {req['timeout_s']:g}s", "match": None}
    if len(data) > limit:
        return {"ok": False, "output": None, "error": "result message too large", "match": None}
    try:
        (n,) = HEADER.unpack(data[:HEADER.size])
        return json.loads(bytes(data[HEADER.size:HEADER.size + n]))
    except Exception:
        return {"ok": False, "output": None, "error": _describe_exit(status), "match": None}


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
    workdir, drop_uid = sys.argv[1], sys.argv[2] == "1"  # drop_uid: the caller is really root
    # Announce readiness so the caller can tell a broken start from a slow one.
    write_msg(1, {"ready": True, "pid_namespace": os.getpid() == 1, "drop_uid": drop_uid})
    while True:
        req = read_msg(0)
        if req is None:
            return
        write_msg(1, run_one(req, workdir, drop_uid))


if __name__ == "__main__":
    main()
