"""Static checks on model-written programs, run in the caller before anything reaches the sandbox.

This is the first of two layers: it rejects, with a reason, programs that name something dangerous. The second
layer (minazr/sandbox_server.py: audit hook, rlimits, namespaces, unprivileged uid) still contains whatever gets
past it, so these rules can stay simple and readable rather than try to be complete.

    check_program(code) -> None when the program may run, else a one-line reason.
"""

import ast
import re

MAX_CODE_CHARS = 20_000

# AZR's ban list, then ours.
BANNED_MODULES = frozenset(
    "logging random multiprocessing pebble subprocess threading datetime time hashlib hmac bcrypt calendar "
    "os sys socket shutil ctypes importlib pathlib signal resource gc inspect asyncio builtins io".split()
)
BANNED_NAMES = frozenset(
    "open exec eval compile __import__ globals locals vars input breakpoint memoryview help exit quit".split()
)
ATTR_FUNCS = frozenset({"getattr", "setattr", "delattr", "hasattr"})
# Dunders that give nothing a program could not get otherwise: method calls such as super().__init__(),
# self.__class__ (what type(self) returns), names and docs, class-level __slots__.
SAFE_DUNDERS = frozenset(
    "__init__ __class__ __name__ __qualname__ __doc__ __slots__ __len__ __eq__ __ne__ __lt__ __le__ __gt__ __ge__ "
    "__hash__ __repr__ __str__ __iter__ __next__ __getitem__ __setitem__ __contains__ __add__ __sub__ __mul__ "
    "__call__ __enter__ __exit__ __bool__ __post_init__".split()
)
# Attributes (and from-import names) that lead to frames, code objects, module globals, or modules that allowed
# modules keep as attributes (collections._sys, dataclasses.sys, enum.bltns), and attribute-walking helpers.
BANNED_ATTRS = frozenset(
    "gi_frame gi_code gi_yieldfrom f_back f_globals f_locals f_builtins f_code tb_frame tb_next cr_frame cr_code "
    "ag_frame ag_code co_code func_globals func_code mro sys _sys os _os builtins _builtins bltns _thread _imp "
    "_io _signal _posixsubprocess _socket _ctypes _weakref posix _posix modules subprocess socket ctypes importlib "
    "marshal _getframe attrgetter methodcaller Formatter get_field".split()
)
TOP_LEVEL_OK = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)
DUNDER_IN_STRING = re.compile(r"__[A-Za-z]\w*__")
ATTR_IN_STRING = re.compile(r"\.(" + "|".join(sorted(a for a in BANNED_ATTRS if not a.startswith("_"))) + r")\b")


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _check_module(name: str | None, level: int) -> str | None:
    if level:
        return "relative imports are not allowed"
    root = (name or "").partition(".")[0]
    if root == "__future__":
        return None
    if root in BANNED_MODULES:
        return f"import of banned module {root!r}"
    if root.startswith("_"):
        return f"import of private module {root!r}"
    return None


def _check_node(node: ast.AST) -> str | None:
    if isinstance(node, ast.Import):
        return next((r for a in node.names if (r := _check_module(a.name, 0))), None)
    if isinstance(node, ast.ImportFrom):
        reason = _check_module(node.module, node.level)
        bad = next((a.name for a in node.names if a.name in BANNED_ATTRS or a.name.startswith("_")), None)
        return reason or (f"import of banned name {bad!r}" if bad else None)
    if isinstance(node, ast.Name):
        if node.id in BANNED_NAMES:
            return f"use of banned name {node.id!r}"
        if _is_dunder(node.id) and node.id not in SAFE_DUNDERS:
            return f"use of dunder name {node.id!r}"
    if isinstance(node, ast.Attribute):
        return _check_attr(node.attr)
    if isinstance(node, ast.MatchClass):  # case object(gi_frame=fr) reads attributes too
        return next((r for r in map(_check_attr, node.kwd_attrs) if r), None)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ATTR_FUNCS:
        name = node.args[1] if len(node.args) > 1 else None
        if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
            return f"{node.func.id} with a computed attribute name"
        if _is_dunder(name.value) or name.value in BANNED_ATTRS:
            return f"{node.func.id} of {name.value!r}"
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        if DUNDER_IN_STRING.search(node.value):
            return "string containing a dunder name"
        if ATTR_IN_STRING.search(node.value):  # '{0.gi_frame.f_back}'.format(g)
            return "string naming a banned attribute"
    return None


def _check_attr(attr: str) -> str | None:
    if _is_dunder(attr) and attr not in SAFE_DUNDERS:
        return f"access to dunder attribute {attr!r}"
    if attr in BANNED_ATTRS:
        return f"access to banned attribute {attr!r}"
    return None


def _check_top_level(tree: ast.Module) -> str | None:
    fs = 0
    for i, stmt in enumerate(tree.body):
        is_docstring = i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
        if not (isinstance(stmt, TOP_LEVEL_OK) or is_docstring):
            return f"top-level {type(stmt).__name__} statement on line {stmt.lineno} (only imports, definitions " \
                   "and assignments may stand outside f)"
        if isinstance(stmt, ast.FunctionDef) and stmt.name == "f":
            fs += 1
    if fs != 1:
        return "the program must define exactly one top-level function f" + (f" (found {fs})" if fs else "")
    return None


def check_program(code: str) -> str | None:
    """Return None when `code` passes the static checks, else a short reason."""
    if not isinstance(code, str):
        return "program is not a string"
    if len(code) > MAX_CODE_CHARS:
        return f"program too long ({len(code)} > {MAX_CODE_CHARS} chars)"
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        return f"syntax error: {e.msg} (line {e.lineno})"
    except (ValueError, RecursionError, MemoryError) as e:  # null bytes, absurd nesting
        return f"unparseable program: {type(e).__name__}"
    reason = _check_top_level(tree)
    if reason:
        return reason
    for node in ast.walk(tree):
        reason = _check_node(node)
        if reason:
            return f"{reason} (line {getattr(node, 'lineno', '?')})"
    return None


def check_inputs(inputs: str) -> str | None:
    """Inputs are an argument list of Python literals as source text, e.g. "[1, 2], 'a'"; None when well formed."""
    if not isinstance(inputs, str):
        return "inputs are not a string"
    if len(inputs) > MAX_CODE_CHARS:
        return f"inputs too long ({len(inputs)} > {MAX_CODE_CHARS} chars)"
    try:
        call = ast.parse(f"f({inputs})", mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "inputs are not a valid argument list"
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name) or any(isinstance(a, ast.Starred) for a in call.args) \
            or any(k.arg is None for k in call.keywords):
        return "inputs are not a plain argument list"
    for node in [*call.args, *(k.value for k in call.keywords)]:
        if not _is_literal(node):
            return "inputs must be Python literals"
    return None


def _is_literal(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
        return True
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return False
