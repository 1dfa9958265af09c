"""Is a proposed task trivial? Pure checks on a proposal's input and output texts, and the probe inputs that show
whether a program's output depends on its input at all.

- `returns_input`: the output is the input itself (`return a`): an abduction solver answers it by copying.
- `variants`: three other inputs of the same shapes (each argument nudged, emptied or zeroed, reversed). A program that
  returns the same output for the proposed input and for every variant it accepts does not read its input (AZR's
  "return a constant" tasks): there is nothing to deduce and any input solves its abduction.
"""

import ast

from minazr import literals
from minazr.code_check import check_inputs


def _args(inputs: str) -> list | None:
    """The positional argument values of a checked argument list; None with keywords or anything unreadable."""
    try:
        call = ast.parse(f"f({inputs})", mode="eval").body
        if call.keywords:
            return None
        return [literals.node_value(a) for a in call.args]
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def returns_input(inputs: str, output: str) -> bool:
    """Is the output text (canonical, from the executor) the input's own value: its one argument, or all of its
    arguments as a tuple or list?"""
    values = _args(inputs)
    if not values:
        return False
    try:
        forms = {literals.serialize(tuple(values), max_chars=10**6), literals.serialize(list(values), max_chars=10**6)}
        if len(values) == 1:
            forms.add(literals.serialize(values[0], max_chars=10**6))
    except literals.NotLiteral:
        return False
    return output in forms


def _shift(c: str) -> str:
    for lo, hi in (("a", "z"), ("A", "Z"), ("0", "9")):
        if lo <= c <= hi:
            return chr(ord(lo) + (ord(c) - ord(lo) + 1) % (ord(hi) - ord(lo) + 1))
    return c


def _nudge(v):
    """Every part changed a little, the shape kept: 7 -> 8, 'abc' -> 'bcd', [1, 'a'] -> [2, 'b']."""
    if isinstance(v, bool):
        return not v
    if isinstance(v, int):
        return v + 1
    if isinstance(v, float):
        return v + 0.5
    if isinstance(v, str):
        return "".join(map(_shift, v)) if any(c.isalnum() for c in v) else v + "x"
    if isinstance(v, bytes):
        return v + b"x"
    if isinstance(v, (list, tuple)):
        return type(v)(_nudge(x) for x in v) if v else type(v)([1])
    if isinstance(v, dict):
        return {k: _nudge(x) for k, x in v.items()} if v else {"k": 1}
    if isinstance(v, (set, frozenset)):
        nudged = type(v)(_nudge(x) for x in v)
        return nudged if nudged != v else type(v)({1, 2})
    return v


def _empty(v):
    """Emptied or zeroed: 7 -> 0, 'abc' -> '', [1, 2] -> [] (and the empty made non-empty)."""
    if isinstance(v, bool):
        return not v
    if isinstance(v, (int, float)):
        return type(v)(0) if v else type(v)(7)
    if isinstance(v, (str, bytes, list, tuple, dict)):
        return type(v)() if v else _nudge(v)
    if isinstance(v, (set, frozenset)):
        return type(v)({0}) if v != {0} else type(v)({1, 2})
    return v


def _reverse(v):
    """Reordered or negated: [1, 2, 3] -> [3, 2, 1], 'abc' -> 'cba', 7 -> -7."""
    if isinstance(v, bool):
        return not v
    if isinstance(v, (int, float)):
        return -v if v else type(v)(3)
    if isinstance(v, (str, bytes, list, tuple)):
        return v[::-1] if len(v) > 1 else _nudge(v)
    return _nudge(v)


def _source(values: list) -> str | None:
    """Argument-list source text for values, or None when it would not pass as a literal input."""
    try:
        text = ", ".join(repr(v) for v in values)
    except (ValueError, RecursionError):
        return None
    return text if check_inputs(text) is None else None


def variants(inputs: str) -> list[str]:
    """Up to three argument lists of the same shapes as `inputs`, each different from it (see the module doc)."""
    values = _args(inputs)
    if not values:
        return []
    out = []
    for change in (_nudge, _empty, _reverse):
        changed = [change(v) for v in values]
        text = _source(changed)
        if text is not None and changed != values and text not in out:
            out.append(text)
    return out
