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
  with one of the program's string constants removed, the output unpacked as the argument list); the task is a
  giveaway when one of them makes f return the output.
- `states_program`: an induction hint that quotes a line of the program.
"""

import ast
from collections import Counter

from minazr.sandbox import literals
from minazr.sandbox.code_check import check_inputs

# builtins that turn an argument into the answer in one step
ELEMENTARY_CALLS = frozenset({"len", "str", "int", "float", "bool", "list", "tuple", "set", "sorted", "reversed",
                              "abs", "sum", "min", "max", "repr", "type", "round", "ord", "chr", "hash", "id",
                              "any", "all", "bin", "hex", "oct", "frozenset", "dict", "enumerate", "zip"})
MAX_CANDIDATES = 12


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
    """Why a program is one elementary step (a reason starting with 'trivial:'), or None."""
    f = _function(code)
    if f is None:
        return None
    body = f.body[1:] if f.body and isinstance(f.body[0], ast.Expr) \
        and isinstance(f.body[0].value, ast.Constant) else f.body
    params = {a.arg for a in f.args.posonlyargs + f.args.args + f.args.kwonlyargs}
    while len(body) > 1 and isinstance(body[0], ast.Assign) and len(body[0].targets) == 1 \
            and isinstance(body[0].targets[0], ast.Name) and _operand(body[0].value, params):
        params.add(body[0].targets[0].id)  # `y = x`, `k = 2`: an alias or a named constant is no step
        body = body[1:]
    if len(body) != 1 or not isinstance(body[0], ast.Return) or body[0].value is None:
        return None
    e = body[0].value
    if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id in ELEMENTARY_CALLS \
            and not e.keywords and e.args and all(_operand(a, params) for a in e.args) \
            and any(isinstance(a, ast.Name) for a in e.args):
        return f"trivial: one step ({e.func.id}() of the input)"
    if isinstance(e, ast.BinOp) and _operand(e.left, params) and _operand(e.right, params) \
            and any(isinstance(x, ast.Name) for x in (e.left, e.right)):
        return "trivial: one step (one arithmetic operation)"
    if isinstance(e, ast.UnaryOp) and isinstance(e.operand, ast.Name) and e.operand.id in params:
        return "trivial: one step (one unary operation)"
    if isinstance(e, ast.Compare) and len(e.ops) == 1 and _operand(e.left, params) \
            and _operand(e.comparators[0], params):
        return "trivial: one step (one comparison)"
    if isinstance(e, ast.Subscript) and isinstance(e.value, ast.Name) and e.value.id in params \
            and _constant_index(e.slice):
        return "trivial: one step (a fixed index or slice of the input)"
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
    """value_key of a checked argument list's positional values; None when it cannot be read."""
    try:
        call = ast.parse(f"f({args})", mode="eval").body
        return value_key([literals.node_value(a) for a in call.args])
    except (SyntaxError, ValueError, RecursionError, MemoryError, literals.NotLiteral):
        return None


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


def _string_constants(code: str) -> list[str]:
    f = _function(code)
    if f is None:
        return []
    found = {n.value for n in ast.walk(f) if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value}
    return sorted(found, key=len, reverse=True)[:6]


def _parts(v, depth: int = 2) -> list:
    """Elements of a container (dict keys and values too), one level down and the next."""
    if depth == 0 or not isinstance(v, (list, tuple, set, frozenset, dict)):
        return []
    items = list(v.keys()) + list(v.values()) if isinstance(v, dict) else list(v)
    out = list(items)
    for x in items:
        out += _parts(x, depth - 1)
    return out


def _arity(inputs: str) -> int | None:
    try:
        call = ast.parse(f"f({inputs})", mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return None if call.keywords else len(call.args)


def reveal_candidates(inputs: str, output: str, program: str) -> list[str]:
    """Argument lists (source text) a solver could read off an abduction task's output without reasoning: for a
    one-argument f, the output itself, each element of it, the output with one of the program's string
    constants removed; for f of n arguments, the output's n elements unpacked (in order and reversed)."""
    try:
        out = literals.parse(output)
    except literals.NotLiteral:
        return []
    n = _arity(inputs)
    values: list[list] = []
    if n == 1:
        values.append([out])
        values += [[x] for x in _parts(out)]
        if isinstance(out, str):
            for c in _string_constants(program):
                if c in out:
                    values += [[out.replace(c, "", 1)], [out.replace(c, "")]]
    elif n and isinstance(out, (list, tuple)) and len(out) == n:
        values += [list(out), list(out)[::-1]]
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
        code = f"def f({params}):\n    return {expr}"
        if expr and _function(code) is not None and code not in out:
            out.append(code)
        if len(out) >= limit:
            break
    return out[:limit]
