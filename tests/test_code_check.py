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
    "def f(s):\n    return s.replace(' ', '_____')",
    "from __future__ import annotations\ndef f(x: int) -> int:\n    return x",
    "def f(x):\n    class Vec:\n        __slots__ = ('x', 'y')\n        def __init__(self, x):\n            self.x = x\n"
    "        def copy(self):\n            return self.__class__(self.x)\n        def name(self):\n"
    "            return type(self).__name__\n    return Vec(x).copy().name()",
    "def f(q):\n    class Node:\n        def __init__(self):\n            self.queue = []\n            self.time = 0\n"
    "            self.code = 1\n    return Node().queue",
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
    ("def f(x):\n    return x.__class__.__base__", "dunder attribute '__base__'"),
    ("def f(x):\n    return x.__dict__", "dunder attribute '__dict__'"),
    ("from dataclasses import sys as s\ndef f():\n    return s", "banned name 'sys'"),
    ("from enum import bltns\ndef f():\n    return bltns", "banned name 'bltns'"),
    ("import dataclasses\ndef f():\n    return dataclasses._thread", "banned attribute '_thread'"),
    ("from operator import attrgetter\ndef f(g):\n    return attrgetter('x')(g)", "banned name 'attrgetter'"),
    ("import string\ndef f(g):\n    return string.Formatter().get_field('0', [g], {})", "banned attribute"),
    ("def f(g):\n    match g:\n        case object(gi_frame=fr):\n            return fr", "banned attribute 'gi_frame'"),
    ("def f(g):\n    return '{0.gi_frame.f_back}'.format(g)", "string naming a banned attribute"),
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


def test_static_and_runtime_ban_lists_agree():
    # sandbox_server.py is a stdlib-only script and keeps its own copy; the two must not drift apart
    from minazr import code_check, sandbox_server

    assert sandbox_server.BANNED_MODULES == code_check.BANNED_MODULES
