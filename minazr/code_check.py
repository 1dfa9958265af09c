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
SAFE_DUNDER_ATTRS = frozenset({"__init__"})  # super().__init__(...) in classes defined inside f
# Non-dunder attributes that lead to frames, code objects or module globals.
BANNED_ATTRS = frozenset(
    "gi_frame gi_code f_back f_globals f_locals f_builtins f_code tb_frame tb_next cr_frame cr_code ag_frame "
    "ag_code co_code func_globals func_code mro".split()
) | BANNED_MODULES | {"_" + m for m in BANNED_MODULES}
TOP_LEVEL_OK = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)
DUNDER_IN_STRING = re.compile(r"__\w+__")


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _check_module(name: str | None, level: int) -> str | None:
    if level:
        return "relative imports are not allowed"
    root = (name or "").partition(".")[0]
    if root in BANNED_MODULES:
        return f"import of banned module {root!r}"
    if root.startswith("_"):
        return f"import of private module {root!r}"
    return None


def _check_node(node: ast.AST) -> str | None:
    if isinstance(node, ast.Import):
        return next((r for a in node.names if (r := _check_module(a.name, 0))), None)
    if isinstance(node, ast.ImportFrom):
        return _check_module(node.module, node.level)
    if isinstance(node, ast.Name):
        if node.id in BANNED_NAMES:
            return f"use of banned name {node.id!r}"
        if _is_dunder(node.id):
            return f"use of dunder name {node.id!r}"
    if isinstance(node, ast.Attribute):
        if _is_dunder(node.attr) and node.attr not in SAFE_DUNDER_ATTRS:
            return f"access to dunder attribute {node.attr!r}"
        if node.attr in BANNED_ATTRS:
            return f"access to banned attribute {node.attr!r}"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ATTR_FUNCS:
        name = node.args[1] if len(node.args) > 1 else None
        if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
            return f"{node.func.id} with a computed attribute name"
        if _is_dunder(name.value) or name.value in BANNED_ATTRS:
            return f"{node.func.id} of {name.value!r}"
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and DUNDER_IN_STRING.search(node.value):
        return "string containing a dunder name"
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
