"""Static checks (pure logic): what is rejected, with which reason, and what AZR-style code still passes."""

import pytest

from minazr.code_check import check_inputs, check_program


@pytest.mark.parametrize("code", [
    "def f(x):\n    return x",
    '"""doc"""\nimport math\nfrom collections import deque\n\nLIMIT = 3\n\ndef g(x):\n    return x\n\n'
    "class Node:\n    def __init__(self, v):\n        self.v = v\n\ndef f(x):\n    return g(Node(x).v)",
    "def f(x):\n    class A(dict):\n        def __init__(self):\n            super().__init__()\n    return A()",
    "def f(obj):\n    return getattr(obj, 'real', 0), hasattr(obj, 'imag')",
    "def f(s):\n    return s.replace('_', '-')",
])
def test_accepts(code):
    assert check_program(code) is None


@pytest.mark.parametrize("code,reason", [
    ("import os\ndef f():\n    pass", "banned module 'os'"),
    ("from os.path import join\ndef f():\n    pass", "banned module 'os'"),
    ("def f():\n    import random\n    return random.random()", "banned module 'random'"),
    ("import _posixsubprocess\ndef f():\n    pass", "private module"),
    ("from . import x\ndef f():\n    pass", "relative imports"),
    ("def f():\n    return eval('1')", "banned name 'eval'"),
    ("def f():\n    return __import__('os')", "banned name '__import__'"),
    ("def f():\n    return vars()", "banned name 'vars'"),
    ("def f(x):\n    return x.__class__", "dunder attribute '__class__'"),
    ("def f(x):\n    return getattr(x, '__globals__')", "getattr of '__globals__'"),
    ("def f(x, n):\n    return getattr(x, n)", "computed attribute name"),
    ("def f(g):\n    return g.gi_frame", "banned attribute 'gi_frame'"),
    ("import collections\ndef f():\n    return collections._sys", "banned attribute '_sys'"),
    ("def f(x):\n    return '{0.__class__}'.format(x)", "dunder name"),
    ("def f():\n    return 1\nf()", "top-level Expr"),
    ("if True:\n    def f():\n        return 1", "top-level If"),
    ("def g():\n    return 1", "exactly one top-level function f"),
    ("async def f():\n    return 1", "top-level AsyncFunctionDef"),
])
def test_rejects_with_reason(code, reason):
    got = check_program(code)
    assert got is not None and reason in got, got


@pytest.mark.parametrize("inputs,ok", [
    ("1, 2", True), ("[1, 2], {'a': (3,)}", True), ("x=1, y='z'", True), ("", True), ("-1.5, None, True", True),
    ("{1, 2}, b'x'", True), ("f(1)", False), ("1 +", False), ("**{'a': 1}", False), ("*[1]", False),
    ("[x for x in y]", False), ("1)(2", False),
])
def test_inputs(inputs, ok):
    assert (check_inputs(inputs) is None) == ok
