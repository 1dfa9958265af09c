"""Static checks on model-written programs, run in the caller before anything reaches the sandbox.

This is a layer of defence in depth, not the judge's guarantee: verdicts are computed in the trusted parent from
data the sandbox hands back (minazr/sandbox/executor.py), so a program that slips past these rules can at worst return a
wrong value. What the rules refuse, with a one-line reason:

- imports outside an allowlist (minazr/sandbox/rules.py; the sandbox enforces the same list at run time);
- names of dangerous builtins (eval, exec, open, __import__, vars, ...), and dunder names outside a short safe list;
- attributes that walk to frames, code, globals, or the modules that allowed modules keep (collections._sys);
  private attributes of modules (`dataclasses._create_fn` execs a string with the real builtins);
- reading attributes by a computed name: getattr & co. only as a direct call with a constant, harmless name (no
  aliases such as `g = getattr`), and no string constant that is a format string reading an attribute ("{0.x}").
  A format string built at run time can still render attributes as text: it cannot call or change anything, and
  the sandbox child holds nothing secret (no expected value ever enters it), so that is left to the run-time layers;
- module objects used as values (`m = json`, `f(json)`) and assignment to attributes of imported names
  (`json.dumps = ...`): CPython does not audit module attribute assignment.

    check_program(code) -> None when the program may run, else a one-line reason.
"""

import ast
import functools
import re
import string

from minazr.sandbox import literals
from minazr.sandbox.rules import ALLOWED_MODULES, ATTR_FUNCS, BANNED_ATTRS, BANNED_NAMES

MAX_CODE_CHARS = 20_000

# Dunders that give nothing a program could not get otherwise: method calls such as super().__init__(),
# self.__class__ (what type(self) returns), names and docs, class-level __slots__.
SAFE_DUNDERS = frozenset(
    "__init__ __class__ __name__ __qualname__ __doc__ __slots__ __len__ __eq__ __ne__ __lt__ __le__ __gt__ __ge__ "
    "__hash__ __repr__ __str__ __iter__ __next__ __getitem__ __setitem__ __contains__ __add__ __sub__ __mul__ "
    "__call__ __enter__ __exit__ __bool__ __post_init__".split()
)
TOP_LEVEL_OK = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)
DUNDER_IN_STRING = re.compile(r"__[A-Za-z]\w*__")
ATTR_IN_STRING = re.compile(r"\.(" + "|".join(sorted(a for a in BANNED_ATTRS if not a.startswith("_"))) + r")\b")


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _check_module(name: str | None, level: int) -> str | None:
    if level:
        return "relative imports are not allowed"
    if name not in ALLOWED_MODULES:
        return f"import of module {name!r} is not allowed (see minazr/sandbox/rules.py, ALLOWED_MODULES)"
    return None


def _check_attr(attr: str) -> str | None:
    if _is_dunder(attr) and attr not in SAFE_DUNDERS:
        return f"access to dunder attribute {attr!r}"
    if attr in BANNED_ATTRS:
        return f"access to banned attribute {attr!r}"
    return None


def _root(node: ast.AST) -> str | None:
    """The name at the root of an attribute/subscript chain: `json` for json.decoder.x[0]."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _reads_attributes(fmt: str) -> bool:
    """True when a replacement field of format string `fmt` (nested ones included) reads an attribute: "{0.x}"."""
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return False  # not a valid format string, so str.format would raise on it
    return any(name is not None and "." in name or _reads_attributes(spec or "") for _, name, spec, _ in fields)


class _Checker(ast.NodeVisitor):
    """Walks the whole tree; `reason` holds the first problem found."""

    def __init__(self, modules: set[str], imported: set[str]):
        self.modules = modules  # names bound to module objects by `import x` / `import x as y`
        self.imported = imported  # every name bound by an import
        self.reason: str | None = None
        self.allowed_uses: set[int] = set()  # ids of Name nodes already judged as part of a permitted form

    def fail(self, node: ast.AST, reason: str) -> None:
        if self.reason is None:
            self.reason = f"{reason} (line {getattr(node, 'lineno', '?')})"

    def generic_visit(self, node):
        if self.reason is None:
            super().generic_visit(node)

    def visit_Import(self, node):
        for alias in node.names:
            if reason := _check_module(alias.name, 0):
                self.fail(node, reason)

    def visit_ImportFrom(self, node):
        if reason := _check_module(node.module, node.level):
            self.fail(node, reason)
        for alias in node.names:
            if alias.name in BANNED_ATTRS or alias.name.startswith("_") or alias.name == "*":
                self.fail(node, f"import of banned name {alias.name!r}")

    def visit_Name(self, node):
        if node.id in BANNED_NAMES:
            self.fail(node, f"use of banned name {node.id!r}")
        elif _is_dunder(node.id) and node.id not in SAFE_DUNDERS:
            self.fail(node, f"use of dunder name {node.id!r}")
        elif id(node) in self.allowed_uses:
            pass
        elif node.id in ATTR_FUNCS:
            self.fail(node, f"{node.id} used other than as a direct call with a constant name")
        elif node.id in self.modules:
            self.fail(node, f"module {node.id!r} used as a value (only module.name is allowed)")

    def visit_Attribute(self, node):
        if reason := _check_attr(node.attr):
            self.fail(node, reason)
        if isinstance(node.ctx, (ast.Store, ast.Del)) and _root(node) in self.imported:
            self.fail(node, f"assignment to an attribute of imported {_root(node)!r}")
        if isinstance(node.value, ast.Name) and node.value.id in self.modules and isinstance(node.ctx, ast.Load):
            self.allowed_uses.add(id(node.value))
        if node.attr.startswith("_") and _root(node) in self.modules:  # dataclasses._create_fn runs exec
            self.fail(node, f"access to private attribute {node.attr!r} of module {_root(node)!r}")
        self.generic_visit(node)

    def visit_Subscript(self, node):
        if isinstance(node.ctx, (ast.Store, ast.Del)) and _root(node) in self.modules:
            self.fail(node, f"assignment into imported module {_root(node)!r}")
        self.generic_visit(node)

    def visit_MatchClass(self, node):  # case object(gi_frame=fr) reads attributes too
        for attr in node.kwd_attrs:
            if reason := _check_attr(attr):
                self.fail(node, reason)
        self.generic_visit(node)

    def visit_Call(self, node):
        if isinstance(node.func, ast.Name) and node.func.id in ATTR_FUNCS:
            self._check_attr_call(node)
        self.generic_visit(node)

    def _check_attr_call(self, node: ast.Call) -> None:
        name = node.func.id
        target = node.args[1] if len(node.args) > 1 else None
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args) \
                or not (isinstance(target, ast.Constant) and isinstance(target.value, str)):
            return self.fail(node, f"{name} with a computed attribute name")
        if _is_dunder(target.value) or target.value in BANNED_ATTRS:
            return self.fail(node, f"{name} of {target.value!r}")
        if name in ("setattr", "delattr") and _root(node.args[0]) in self.imported:
            return self.fail(node, f"{name} on imported {_root(node.args[0])!r}")
        self.allowed_uses.add(id(node.func))

    def visit_Constant(self, node):
        if isinstance(node.value, str):
            if DUNDER_IN_STRING.search(node.value):
                self.fail(node, "string containing a dunder name")
            elif ATTR_IN_STRING.search(node.value):  # '{0.gi_frame.f_back}'.format(g)
                self.fail(node, "string naming a banned attribute")
            elif "{" in node.value and _reads_attributes(node.value):  # '{0.real}'.format(x)
                self.fail(node, "format string that reads an attribute")


def _imports(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Names bound to modules (`import a.b` binds a, `import a as m` binds m) and all import-bound names."""
    modules, imported = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.partition(".")[0]
                modules.add(bound)
                imported.add(bound)
        elif isinstance(node, ast.ImportFrom):
            imported.update(alias.asname or alias.name for alias in node.names)
    return modules, imported


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
    return _check_program(code)


@functools.lru_cache(maxsize=1024)  # one program is checked many times: each induction input, each abduction answer
def _check_program(code: str) -> str | None:
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
    checker = _Checker(*_imports(tree))
    try:
        # Attribute and Call nodes are visited before the Name nodes below them, so permitted forms
        # (json.loads, getattr(x, 'y')) are marked before their names are judged.
        checker.visit(tree)
    except RecursionError:  # deep nesting that the parser still accepted
        return "program nested too deeply"
    return checker.reason


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
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name) \
            or any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return "inputs are not a plain argument list"
    for node in [*call.args, *(k.value for k in call.keywords)]:
        if not _is_literal(node):
            return "inputs must be Python literals"
    return None


def _is_literal(node: ast.AST) -> bool:
    """The judge's own reader decides, so every input that passes here is one the sandbox can read."""
    try:
        literals.node_value(node)
        return True
    except literals.NotLiteral:
        return False
