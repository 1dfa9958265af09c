"""Tasks that give their answer away: pure checks that play the cheapest solver a proposer could farm.

Each check asks what a solver that does not reason would do, and whether that already answers the task:

- `one_step`: the program is one elementary operation on its argument (`len(x)`, `x[0]`, `x + 1`, `str(x)`):
  nothing to deduce. Method calls (`s.upper()`, `text.replace(a, b)`) are not counted: CRUXEval's human-written
  tasks have dozens of them, and their semantics are the reasoning.
- `value_key`: one text per value as `==` sees it (`1`, `1.0` and `True` are one value; a tuple and a list of the
  same items too), so "distinct inputs" means distinct to a lookup table.
- `lookup_answers`: would a lookup table of the visible pairs (by `value_key`), falling back to the most common
  visible output, pass every hidden pair of an induction task? Then no program needs to be induced.
- `reveal_candidates`: inputs a solver reads straight off an abduction task's output (its elements, the output
  unpacked as the argument list); the task is a giveaway when one of them makes f return the output. (Text
  edits of the output, `'hey!!'` less its `'!'`s, are not tried: CRUXEval's human tasks are full of those.)
- `states_program`: an induction hint that quotes a line of the program.
"""

import ast
import builtins
from collections import Counter

from minazr.sandbox import literals
from minazr.sandbox.code_check import check_inputs
from minazr.selfplay.tasks import probes

# builtins that turn an argument into the answer in one step
ELEMENTARY_CALLS = frozenset({"len", "str", "int", "float", "bool", "list", "tuple", "set", "sorted", "reversed",
                              "abs", "sum", "min", "max", "repr", "type", "round", "ord", "chr", "hash", "id",
                              "any", "all", "bin", "hex", "oct", "frozenset", "dict", "enumerate", "zip"})
MAX_CANDIDATES = 12
_BUILTIN_NAMES = frozenset(dir(builtins))


def _function(code: str) -> ast.FunctionDef | None:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "f"), None)


def _operand(node: ast.AST, params: set[str]) -> bool:
    """A parameter or a constant (a tuple of constants too): what a one-step program operates on."""
    if isinstance(node, ast.Name):
        return node.id in params
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant):  # -1
        return True
    return False


def one_step(code: str) -> str | None:
    """Why a program is one elementary step (a reason starting with 'trivial:'), or None. Straight-line code is
    read as one expression: assignments are inlined (`y = x + 1; return y`), `pass` and docstrings dropped, and
    operations that change nothing (`+ 0`, `* 1`, `-(-x)`) are not steps; `g = len; return g(x)` is `len(x)`."""
    f = _function(code)
    if f is None:
        return None
    params = {a.arg for a in f.args.posonlyargs + f.args.args + f.args.kwonlyargs}
    env: dict[str, ast.AST] = {}
    calls = dict.fromkeys(ELEMENTARY_CALLS)
    for i, stmt in enumerate(f.body):
        if isinstance(stmt, ast.Pass) or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)):
            continue
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name, value = stmt.targets[0].id, stmt.value
            if isinstance(value, ast.Name) and value.id in calls and value.id not in params | set(env):
                calls[name] = calls[value.id] or value.id  # an alias of an elementary builtin
            else:
                env[name] = value
            params.discard(name)
            continue
        if isinstance(stmt, ast.Return) and stmt.value is not None and i == len(f.body) - 1:
            counted = _steps(stmt.value, params, env, calls, 0)
            if counted is None:
                return None
            ops, reads = counted
            if reads and len(ops) == 1:
                return f"trivial: one step ({ops[0]})"
        return None
    return None


_IDENTITY_OPS = {(ast.Add, 0), (ast.Sub, 0), (ast.Mult, 1), (ast.Div, 1), (ast.FloorDiv, 1), (ast.Pow, 1)}


def _steps(e: ast.AST, params: set, env: dict, calls: dict, depth: int) -> tuple[list[str], bool] | None:
    """(the operations, whether it reads a parameter) of an elementary expression, or None when it is not one."""
    if depth > 20:
        return None
    go = lambda node: _steps(node, params, env, calls, depth + 1)  # noqa: E731
    if isinstance(e, ast.Name):
        if e.id in params:
            return [], True
        return go(env[e.id]) if e.id in env else None
    if isinstance(e, ast.Constant):
        return [], False
    if isinstance(e, ast.UnaryOp):
        inner = e.operand
        if isinstance(e.op, ast.UAdd):
            return go(inner)
        if isinstance(inner, ast.UnaryOp) and type(inner.op) is type(e.op) and not isinstance(e.op, ast.Not):
            return go(inner.operand)  # -(-x), ~~x
        sub = go(inner)
        if sub is None:
            return None
        return ([] if not sub[1] else ["one unary operation"]) + sub[0], sub[1]
    if isinstance(e, ast.BinOp):
        for keep, other in ((e.left, e.right), (e.right, e.left)):
            if isinstance(other, ast.Constant) and type(other.value) in (int, float) \
                    and (type(e.op), other.value) in _IDENTITY_OPS and (other is e.right or type(e.op) in
                                                                        (ast.Add, ast.Mult)):
                return go(keep)
        left, right = go(e.left), go(e.right)
        if left is None or right is None:
            return None
        return ["one arithmetic operation"] + left[0] + right[0], left[1] or right[1]
    if isinstance(e, ast.Compare) and len(e.ops) == 1:
        left, right = go(e.left), go(e.comparators[0])
        if left is None or right is None:
            return None
        return ["one comparison"] + left[0] + right[0], left[1] or right[1]
    if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id in calls and not e.keywords \
            and e.func.id not in params and e.func.id not in env:
        parts = [go(a) for a in e.args]
        if not parts or any(x is None for x in parts):
            return None
        return [f"{calls[e.func.id] or e.func.id}() of the input"] + [op for x in parts for op in x[0]], any(x[1] for x in parts)
    if isinstance(e, ast.Subscript) and _constant_index(e.slice):
        sub = go(e.value)
        if sub is None:
            return None
        return ["a fixed index or slice of the input"] + sub[0], sub[1]
    return None


def _constant_index(node: ast.AST) -> bool:
    if isinstance(node, ast.Slice):
        return all(part is None or _operand(part, set()) for part in (node.lower, node.upper, node.step))
    return _operand(node, set())


# ---------------------------------------------------------------- values as == sees them


def _normal(v):
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, complex) and v.imag == 0:
        return _normal(v.real)
    if isinstance(v, (list, tuple)):
        return ("seq", tuple(_normal(x) for x in v))
    if isinstance(v, (set, frozenset)):
        return ("set", tuple(sorted(repr(_normal(x)) for x in v)))
    if isinstance(v, dict):
        return ("dict", tuple(sorted((repr(_normal(k)), repr(_normal(x))) for k, x in v.items())))
    return v


def value_key(value) -> str:
    """One text for every value `==` (or a list/tuple swap) cannot tell apart: 1, 1.0, True; (1, 2) and [1, 2]."""
    return repr(_normal(value))


def args_key(args: str) -> str | None:
    """value_key of a checked argument list's positional values; None when it cannot be read (or has keywords)."""
    values = probes._args(args)
    return None if values is None else value_key(values)


def lookup_answers(visible: list[list[str]], hidden: list[list[str]]) -> bool:
    """Does a lookup table of the visible (input, output) pairs, with the most common visible output for any
    other input, answer every hidden pair? Outputs compare as canonical texts after value_key."""
    def out_key(text: str) -> str:
        try:
            return value_key(literals.parse(text))
        except literals.NotLiteral:
            return text

    table = {args_key(a): out_key(o) for a, o in visible}
    fallback = Counter(out_key(o) for _, o in visible).most_common(1)[0][0] if visible else None
    return bool(hidden) and all(table.get(args_key(a), fallback) == out_key(o) for a, o in hidden)


# ---------------------------------------------------------------- abduction: inputs read off the output


def _parts(v, depth: int = 3) -> list:
    """Elements of a container (dict keys and values too), one level down and the next."""
    if depth == 0 or not isinstance(v, (list, tuple, set, frozenset, dict)):
        return []
    items = list(v.keys()) + list(v.values()) if isinstance(v, dict) else list(v)
    out = list(items)
    for x in items:
        out += _parts(x, depth - 1)
    return out


def reveal_candidates(inputs: str, output: str, program: str) -> list[str]:
    """Argument lists (source text) a solver could read off an abduction task's output without reasoning: for a
    one-argument f, the output itself and each element of it (three levels down); for f of n arguments, the first
    or last n items of the output (a dict's values), in order and reversed."""
    try:
        out = literals.parse(output)
    except literals.NotLiteral:
        return []
    values_in = probes._args(inputs)
    n = None if values_in is None else len(values_in)
    values: list[list] = []
    if n == 1:
        values.append([out])
        values += [[x] for x in _parts(out)]
    elif n:
        items = list(out.values()) if isinstance(out, dict) else list(out) if isinstance(out, (list, tuple)) else []
        if len(items) >= n:  # the arguments as the output's first or last n items, in order or reversed
            for part in (items[:n], items[-n:]):
                values += [part, part[::-1]]
    texts = []
    for vals in values:
        try:
            text = ", ".join(literals.serialize(v, max_chars=2000) for v in vals)
        except (literals.NotLiteral, RecursionError, MemoryError):
            continue
        if text not in texts and check_inputs(text) is None:
            texts.append(text)
        if len(texts) == MAX_CANDIDATES:
            break
    return texts


def states_program(message: str, program: str) -> bool:
    """Does an induction hint quote a line of the program's body (spaces ignored, 8 characters or more)?"""
    squeeze = "".join(message.split())
    f = _function(program)
    if f is None:
        return False
    lines = program.splitlines()[f.lineno:]  # the body, after `def f(...):`
    return any(len(s) >= 8 and s in squeeze for s in ("".join(line.split()) for line in lines))


def hint_programs(message: str, program: str, limit: int = 4) -> list[str]:
    """Programs a solver could copy out of an induction hint: a `def f` in it, or an expression in it (a code
    span, the whole hint, one of its lines) as the body of f over the program's own parameters."""
    f = _function(program)
    if f is None:
        return []
    params = ", ".join(a.arg for a in f.args.posonlyargs + f.args.args)
    pieces = [p for i, p in enumerate(message.split("`")) if i % 2] + [message] + message.splitlines()
    out = []
    if _function(message) is not None:
        out.append(message)
    for piece in pieces:
        expr = piece.strip().removeprefix("return ").strip().rstrip(".")
        for prefix in ("f(x) =", "f(x)=", "returns", "=", ":"):
            if prefix in expr:
                expr = expr.split(prefix, 1)[1].strip()
        for code in (f"def f({params}):\n    return {expr}", _rebound(expr, f)):
            if code and _function(code) is not None and code not in out:
                out.append(code)
        if len(out) >= limit:
            break
    return out[:limit]


def _rebound(expr: str, f: ast.FunctionDef) -> str | None:
    """`expr` as the body of f when its free names, as many as f's parameters, stand for them in order of first
    use (a hint that writes `2*n+1` or `output = 2*input + 1` for `def f(x)`)."""
    try:
        tree = ast.parse(expr, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in names and node.id not in _BUILTIN_NAMES:
            names.append(node.id)
    params = [a.arg for a in f.args.posonlyargs + f.args.args]
    if not names or len(names) != len(params):
        return None
    binds = "".join(f"    {n} = {p}\n" for n, p in zip(names, params) if n != p)
    return f"def f({', '.join(params)}):\n{binds}    return {expr}"
