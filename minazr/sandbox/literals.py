"""Python values as literal text, both ways, for the judge: the sandbox child writes, the trusted parent reads.

    serialize([3, {'b', 'a'}])    -> "[3, {'a', 'b'}]"       (in the child that ran the program)
    parse("[3, {'a', 'b'}]")      -> [3, {'a', 'b'}]          (in the parent, which then compares values)

`serialize` accepts only values built from the exact builtin types None, bool, int, float, complex, str, bytes,
list, tuple, dict, set and frozenset (no subclasses: a program's own __repr__ or __eq__ never runs), refuses
non-finite floats, cycles, nesting deeper than `max_depth` and text longer than `max_chars`, and writes one
canonical text per value: set elements and dict items are sorted by their text, so the same value gives the same
text whatever the hash seed. That makes "two runs gave the same output" an exact string comparison.

`parse` is the parent's safe reader: the same grammar (literals, containers, `set()`, `frozenset({...})`), no
names, calls or operators beyond a sign and a complex `a+bj`, no non-finite numbers (`1e999`), no integer too
long for Python to print; anything else raises NotLiteral. Comparing two
parsed values with == is safe because they contain only builtin types.

This module uses only the standard library: the sandbox server script imports it by file, the package as
`minazr.sandbox.literals`.
"""

import ast

MAX_DEPTH = 100
MAX_INT_BITS = 14_000  # about 4,200 decimal digits: Python refuses to print ints past 4,300
_SCALARS = (str, bytes, int, bool, type(None))


class NotLiteral(ValueError):
    """A value or a text that is not a plain literal; `str(e)` is a short reason."""


# ---------------------------------------------------------------- value -> text


def serialize(value, max_chars: int = 10_000, max_depth: int = MAX_DEPTH) -> str:
    """The canonical literal text of `value`; raises NotLiteral (or RecursionError/MemoryError) with a reason."""
    budget = [max_chars]
    return _text(value, max_depth, budget, set())


def _take(budget: list, text: str) -> str:
    budget[0] -= len(text)
    if budget[0] < 0:
        raise NotLiteral("output too large")
    return text


def _text(v, depth: int, budget: list, path: set) -> str:
    """Text of v; every piece of punctuation and every scalar is charged to `budget` once."""
    t = type(v)
    if t in _SCALARS:
        return _take(budget, repr(v))  # exact str/bytes/int: the builtin repr, no program code
    if t is float or t is complex:
        if v - v != 0:  # inf - inf and nan - nan are nan
            raise NotLiteral("output contains a non-finite number")
        return _take(budget, repr(v))
    if t not in (list, tuple, dict, set, frozenset):
        raise NotLiteral(f"output of type {t.__name__!r} is not a plain literal")
    if depth <= 0:
        raise NotLiteral("output nested too deeply")
    if id(v) in path:
        raise NotLiteral("output contains itself")
    path.add(id(v))
    _take(budget, "[]" + ", " * max(0, len(v) - 1))  # brackets and separators (len is exact for these types)
    if t is dict:
        parts = [_text(k, depth - 1, budget, path) + _take(budget, ": ") + _text(x, depth - 1, budget, path)
                 for k, x in v.items()]
    else:
        parts = [_text(x, depth - 1, budget, path) for x in v]
    path.discard(id(v))
    if t is list:
        return "[" + ", ".join(parts) + "]"
    if t is tuple:
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
    body = "{" + ", ".join(sorted(parts)) + "}"  # sets and dicts: one text per value, whatever the hash seed
    if t is dict:
        return body
    if t is set:
        return body if parts else "set()"
    return f"frozenset({body})" if parts else "frozenset()"


# ---------------------------------------------------------------- text -> value


def parse(text: str, max_chars: int = 100_000):
    """The value of a literal text; raises NotLiteral for anything else (never evaluates code)."""
    if not isinstance(text, str):
        raise NotLiteral("not a string")
    if len(text) > max_chars:
        raise NotLiteral("literal too long")
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        # syntax, null bytes, integers past Python's digit limit, absurd nesting
        raise NotLiteral(f"not a literal ({type(e).__name__})") from None
    return node_value(node)


def node_value(node: ast.AST):
    """The value of one parsed expression node under the literal grammar; raises NotLiteral."""
    try:
        return _value(node, MAX_DEPTH * 2)
    except NotLiteral:
        raise
    except (TypeError, ValueError, RecursionError, MemoryError, OverflowError) as e:  # e.g. unhashable set items
        raise NotLiteral(f"not a literal ({type(e).__name__})") from None


def is_literal(text: str) -> bool:
    try:
        parse(text)
        return True
    except NotLiteral:
        return False


def equal(a: str, b: str) -> bool:
    """Are two literal texts equal by value? False when either is not a literal."""
    try:
        return parse(a) == parse(b)
    except NotLiteral:
        return False


_NUMBERS = (int, float, complex)


def _value(node: ast.AST, depth: int):
    value = _node(node, depth)
    if type(value) in (float, complex) and value - value != 0:  # 1e999, -1e999 and 1e999j read as infinities
        raise NotLiteral("non-finite number")
    return value


def _node(node: ast.AST, depth: int):
    if depth <= 0:
        raise NotLiteral("literal nested too deeply")
    if isinstance(node, ast.Constant):
        if node.value is Ellipsis:
            raise NotLiteral("'...' is not a value")
        if type(node.value) is int and node.value.bit_length() > MAX_INT_BITS:
            raise NotLiteral("integer too large")
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) \
            and isinstance(node.operand, ast.Constant) and type(node.operand.value) in _NUMBERS:
        operand = _value(node.operand, depth - 1)
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)) \
            and isinstance(node.right, ast.Constant) and type(node.right.value) is complex:
        left, right = _value(node.left, depth - 1), _value(node.right, depth - 1)
        if type(left) not in (int, float):
            raise NotLiteral("not a complex literal")
        return left + right if isinstance(node.op, ast.Add) else left - right
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_value(x, depth - 1) for x in node.elts]
        return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise NotLiteral("'**' in a dict literal")
        return {_value(k, depth - 1): _value(v, depth - 1) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("set", "frozenset") \
            and not node.keywords and len(node.args) <= (0 if node.func.id == "set" else 1):
        if node.args and not isinstance(node.args[0], (ast.Set, ast.List, ast.Tuple)):
            raise NotLiteral("frozenset of something other than a literal")
        items = _value(node.args[0], depth - 1) if node.args else ()
        return set(items) if node.func.id == "set" else frozenset(items)
    raise NotLiteral(f"{type(node).__name__} is not allowed in a literal")


def canonical(text: str, max_chars: int = 10_000) -> str:
    """The canonical text of the value a literal text denotes (what `serialize` would have written for it)."""
    return serialize(parse(text), max_chars)


def order_depends_on_seed(value) -> bool:
    """True when iterating `value` may give a different order under another hash seed: it holds a set or frozenset
    of two or more elements that contain a str or bytes, at any depth of tuples and frozensets (the hashes of ints,
    floats and tuples of them do not depend on the seed)."""
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t in (set, frozenset) and len(v) > 1 and any(_has_text(x) for x in v):
            return True
        if t in (list, tuple, set, frozenset):
            stack.extend(v)
        elif t is dict:
            stack.extend(v.keys())
            stack.extend(v.values())
    return False


def input_order_depends_on_seed(inputs: str) -> bool:
    """order_depends_on_seed for an argument list given as text ("{'a', 'b'}, 3")."""
    call = ast.parse(f"f({inputs})", mode="eval").body
    return any(order_depends_on_seed(node_value(a)) for a in [*call.args, *(k.value for k in call.keywords)])


def _has_text(value) -> bool:
    """Does the hash of `value` depend on the seed: is there a str or bytes in it, inside tuples and frozensets?"""
    if type(value) in (str, bytes):
        return True
    return type(value) in (tuple, frozenset) and any(_has_text(x) for x in value)
