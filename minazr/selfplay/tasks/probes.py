"""Is a proposed task trivial? Pure checks on a proposal's input and output texts, and the probe inputs that show
whether a program's output depends on its input at all.

- `returns_input`: the output is the input itself (`return a`): an abduction solver answers it by copying.
- `variants`: up to twelve other inputs of the same shapes (every argument nudged, emptied or zeroed, reversed,
  grown, case-swapped, upper-cased; arguments that meet, one an element of another; then one argument at a time). A program that returns the same output for the proposed input and
  for every variant it accepts does not read its input (AZR's "return a constant" tasks): there is nothing to
  deduce and any input solves its abduction. One that accepts none of them (`assert a == [9, 8, 7]`) is as
  trivial: its task is a constant for the only input it takes.
- `projection`: the output is one of several arguments, unchanged, on every input: `def f(a, b): return b`.
"""

import ast

from minazr.sandbox import literals
from minazr.sandbox.code_check import check_inputs


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


def _grow(v):
    """Longer or larger: 'ab' -> ' ababAz9 é ', [1, 2] -> [1, 2, 1, 2], 7 -> 17, a dict gains a key."""
    if isinstance(v, bool):
        return not v
    if isinstance(v, (int, float)):
        return v * 2 + 3
    if isinstance(v, str):
        return " " + v + v + "Az9 é "
    if isinstance(v, bytes):
        return v + b"Az9 "
    if isinstance(v, (list, tuple)):
        return v + v if v else type(v)([1, 2])
    if isinstance(v, dict):
        return {**v, "zz": _nudge(next(iter(v.values()))) if v else 1}
    if isinstance(v, (set, frozenset)):
        return type(v)(set(v) | {_nudge(x) for x in v}) if v else type(v)({1})
    return v


def _swap(v):
    """Case swapped, one less, each element swapped: 'Ab' -> 'aB', 7 -> 6, [1, 'a'] -> [0, 'A']."""
    if isinstance(v, bool):
        return not v
    if isinstance(v, int):
        return v - 1
    if isinstance(v, float):
        return v - 0.25
    if isinstance(v, str):
        return v.swapcase() if v.swapcase() != v else "A" + v
    if isinstance(v, (list, tuple)):
        return type(v)(_swap(x) for x in v) if v else type(v)([0])
    if isinstance(v, dict):
        return {k: _swap(x) for k, x in v.items()} if v else {"a": 0}
    return _nudge(v)


def _shared(values: list) -> list[list]:
    """Inputs whose arguments meet: one argument set to an element (a key, a character) of another, or to a copy of
    another of its type. A lookup (`name in marks`) or an intersection misses on most inputs and hits on these."""
    out = []
    for i, a in enumerate(values):
        members = list(a) if isinstance(a, (str, list, tuple, dict, set, frozenset)) else []
        for j, b in enumerate(values):
            if i == j:
                continue
            if members and type(members[0]) is type(b) and members[0] != b:
                out.append(values[:j] + [members[0]] + values[j + 1:])
            elif type(a) is type(b) and a != b:
                out.append(values[:j] + [a] + values[j + 1:])
    return out


def _case(v):
    """All upper case (or lower, when it already is): 'Ohno' -> 'OHNO', '548' -> '548a'; containers elementwise."""
    if isinstance(v, str):
        return v.upper() if v.upper() != v else (v.lower() if v.lower() != v else v + "a")
    if isinstance(v, (list, tuple)):
        return type(v)(_case(x) for x in v) if v else type(v)(["a"])
    return _swap(v)


CHANGES = (_nudge, _empty, _reverse, _grow, _swap, _case)
MAX_VARIANTS = 12


def _source(values: list) -> str | None:
    """Argument-list source text for values, or None when it would not pass as a literal input."""
    try:
        text = ", ".join(repr(v) for v in values)
    except (ValueError, RecursionError):
        return None
    return text if check_inputs(text) is None else None


def variants(inputs: str) -> list[str]:
    """Up to MAX_VARIANTS argument lists of the same shapes as `inputs`, each different from it: every argument
    changed at once in each of six ways, two where the arguments meet (one an element of another), then (with
    several arguments) one argument at a time, so that a program
    that reads only one of its arguments, or only part of one, still sees it change. [] for keyword arguments or an
    input with nothing to change (None)."""
    values = _args(inputs)
    if not values:
        return []
    candidates = [[change(v) for v in values] for change in CHANGES] + _shared(values)[:2]
    if len(values) > 1:
        candidates += [values[:i] + [change(v)] + values[i + 1:] for change in CHANGES for i, v in enumerate(values)]
    out = []
    for changed in candidates:
        text = _source(changed) if changed != values else None
        if text is not None and text not in out:
            out.append(text)
        if len(out) == MAX_VARIANTS:
            break
    return out


def projection(inputs: str, output: str, probed: list[tuple[str, str]]) -> int | None:
    """The index of the argument that the output equals, on the input and on every answered probe (input text,
    output text), when there is one: the program returns one of its arguments unchanged."""
    values = _args(inputs)
    if not values or len(values) < 2 or not probed:
        return None
    runs = [(values, output)] + [(_args(x), out) for x, out in probed]
    for i in range(len(values)):
        try:
            if all(args is not None and len(args) > i and literals.serialize(args[i], max_chars=10**6) == out
                   for args, out in runs):
                return i
        except literals.NotLiteral:
            continue
    return None
