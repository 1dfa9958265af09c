"""The executor's contract (DESIGN.md): valid AZR-style programs run, answers are compared by value in the
sandbox, and no input whatsoever makes it raise or hang."""

import pytest

from minazr.sandbox.executor import Check, Equal, ExecResult, Executor, Run, run_program


@pytest.fixture(scope="module")
def ex():
    with Executor(workers=2) as executor:
        yield executor


VALID = [
    ("def f(s):\n    return s[::-1].upper()", "'abc'", "'CBA'"),
    ("def f(xs, k):\n    return sorted(xs)[-k:]", "[5, 1, 4, 2], 2", "[4, 5]"),
    ("def f(d):\n    return {v: k for k, v in d.items()}", "{'a': 1, 'b': 2}", "{1: 'a', 2: 'b'}"),
    ("def f(n):\n    if n < 2:\n        return n\n    return f(n - 1) + f(n - 2)", "15", "610"),
    ("def f(items):\n    class Stack:\n        def __init__(self):\n            self.data = []\n"
     "        def push(self, x):\n            self.data.append(x)\n"
     "    s = Stack()\n    for i in items:\n        s.push(i * 2)\n    return s.data", "[1, 2]", "[2, 4]"),
    ("from collections import Counter\nimport math\n\ndef f(s):\n    c = Counter(s)\n"
     "    return max(c.values()), math.factorial(3)", "'banana'", "(3, 6)"),
    ("import itertools\ndef f(xs):\n    return list(itertools.accumulate(xs))", "[1, 2, 3]", "[1, 3, 6]"),
    ("MOD = 7\n\ndef helper(x):\n    return x % MOD\n\ndef f(x, scale=1):\n    return helper(x * scale)",
     "10, scale=2", "6"),
    ("from dataclasses import dataclass\nfrom collections import namedtuple\n\ndef f(a):\n"
     "    P = namedtuple('P', 'x y')\n    return P(a, a + 1).y", "1", "2"),
]


@pytest.mark.parametrize("code,inputs,expected", VALID)
def test_valid_programs_run(ex, code, inputs, expected):
    res = ex.run(code, inputs)
    assert res == ExecResult(True, expected, None, None)


def test_run_program_contract():
    res = run_program("def f(a, b):\n    return a + b", "[1, 2], [3]")
    assert res.ok and res.output == "[1, 2, 3]" and res.error is None


def test_sets_of_strings_are_deterministic_by_value(ex):
    # set order depends on the hash seed, which differs between the two runs; the values are equal
    res = ex.run("def f(words):\n    return set(words)", "['apple', 'kiwi', 'fig', 'plum', 'pear']")
    assert res.ok and set(eval(res.output)) == {"apple", "kiwi", "fig", "plum", "pear"}


def test_frozensets_and_counters_are_deterministic_by_value(ex):
    res = ex.run("def f(words):\n    return frozenset(w.lower() for w in words)", "['Apple', 'banana', 'Cherry', 'date']")
    assert res.ok and res.output.startswith("frozenset(")
    res = ex.run("from collections import Counter\ndef f(s):\n    return dict(Counter(set(s))), {c: 1 for c in set(s)}",
                 "'abcdefgh'")
    assert res.ok, res
    # a Counter is not a plain literal: its text would not read back as the same value
    res = ex.run("from collections import Counter\ndef f(s):\n    return Counter(s)", "'aab'")
    assert not res.ok and "'Counter' is not a plain literal" in res.error
    assert ex.equal("frozenset({'a', 'b'})", "frozenset({'b', 'a'})").match is True


def test_codecs_work(ex):
    # the codecs str.encode looks up lazily are preloaded (nothing can be imported once a child is confined)
    res = ex.run("def f(s):\n    return s.encode('utf-16-le'), s.encode('idna'), s.encode('cp1252')", "'abc'")
    assert res.ok and res.output == "(b'a\\x00b\\x00c\\x00', b'abc', b'abc')", res


def test_invalid_timeouts_are_refused_without_harming_servers(ex):
    for bad in (float("nan"), float("inf"), 1e12, 0, -1, "5"):
        res = ex.run("def f():\n    return 1", "", timeout_s=bad)
        assert not res.ok and "invalid timeout" in res.error
    assert ex.run("def f():\n    return 1", "").ok


def test_a_failed_restart_shrinks_the_pool_instead_of_breaking_it(monkeypatch):
    from minazr.sandbox import executor as executor_mod

    with Executor(workers=3) as ex:
        ex._free[0].proc.kill()
        ex._free[0].proc.wait()
        real = executor_mod._Server

        def broken(*a, **k):
            raise executor_mod.SandboxError("cannot start")

        monkeypatch.setattr(executor_mod, "_Server", broken)
        results = [ex.run("def f():\n    return 3", "") for _ in range(4)]
        monkeypatch.setattr(executor_mod, "_Server", real)
        assert ex._size == 2
        assert all(r.ok for r in results[1:]), results


def test_check_and_equal_compare_values(ex):
    code = "def f(x):\n    return [x, x * 2]"
    assert ex.check(code, "3", "[3, 6]").match is True
    assert ex.check(code, "3", "[3, 7]").match is False
    assert ex.check(code, "4", "[4,8]").match is True
    assert ex.equal("{'a': (1, 2)}", "{'a': (1,2)}").match is True
    assert ex.equal("1.0", "1").match is True
    assert ex.equal("[1, 2]", "[2, 1]").match is False
    assert ex.equal("'abc'", "abc").match is False


def test_map_keeps_order(ex):
    jobs = [Run("def f(x):\n    return x * x", str(i)) for i in range(20)]
    jobs += [Check("def f(x):\n    return x", "1", "1"), Equal("1", "2")]
    res = ex.map(jobs)
    assert [r.output for r in res[:20]] == [str(i * i) for i in range(20)]
    assert res[20].match is True and res[21].match is False


@pytest.mark.parametrize("code,inputs,reason", [
    (None, "", "not a string"),
    (b"def f(): return 1", "", "not a string"),
    ("def f(:", "", "syntax error"),
    ("x = 1", "", "exactly one top-level function f"),
    ("def f():\n    return 1\ndef f():\n    return 2", "", "found 2"),
    ("def f():\n    return 1\nprint(f())", "", "top-level Expr"),
    ("def f(x):\n    return x", "__import__('os')", "inputs must be Python literals"),
    ("def f(x):\n    return x", "1) + g(2", "inputs"),
    ("def f(x):\n    return x", "*[1]", "plain argument list"),
    ("def f():\n    return 1", "", None),
    ("def f():\n" + "    x = 1\n" * 5000, "", "too long"),
    ("def f():\n    return " + "(" * 1000 + ")" * 1000, "", ""),
    ("def f(x):\n    return x", "'\x00'", "inputs are not a valid argument list"),
    ("def f(x):\n    return x", "'\\x00'", None),
    ("def f():\n    return '\udc80'", "", "unparseable"),
    ("def f():\n    return '\\udc80' + chr(0xdc81)", "", None),
])
def test_never_raises(ex, code, inputs, reason):
    res = ex.run(code, inputs)
    assert isinstance(res, ExecResult)
    if reason is None:
        assert res.ok, res
    else:
        assert not res.ok and reason in res.error, res


def test_a_killed_server_is_replaced(ex):
    for server in list(ex._free):
        server.proc.kill()
    results = [ex.run("def f():\n    return 5", "") for _ in range(3)]
    assert not results[0].ok and "sandbox failure" in results[0].error
    assert results[-1].ok and results[-1].output == "5"
