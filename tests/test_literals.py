"""The judge's literal text (pure logic): what the sandbox child writes and what the trusted parent reads back."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minazr.sandbox import literals
from minazr.selfplay import parsing
from minazr.sandbox.executor import ExecResult, _agree
from minazr.sandbox.literals import NotLiteral

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=8), st.binary(max_size=8))
HASHABLE = st.recursive(SCALARS, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
                        max_leaves=6)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                      | st.dictionaries(HASHABLE, inner, max_size=3) | st.sets(HASHABLE, max_size=3)
                      | st.frozensets(HASHABLE, max_size=3), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_every_plain_value_round_trips_through_its_canonical_text(value):
    text = literals.serialize(value)
    back = literals.parse(text)
    assert back == value and type(back) is type(value)
    assert literals.canonical(text) == text  # one text per value


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=5), min_size=2, max_size=8, unique=True), st.randoms())
def test_the_text_of_a_set_or_dict_does_not_depend_on_order(words, rnd):
    shuffled = list(words)
    rnd.shuffle(shuffled)
    assert literals.serialize(set(words)) == literals.serialize(set(shuffled))
    assert literals.serialize(dict.fromkeys(words, 1)) == literals.serialize(dict.fromkeys(shuffled, 1))


class Shifty(list):
    def __repr__(self):
        return "42"


def _self_containing():
    x = [1]
    x.append(x)
    return x


@pytest.mark.parametrize("value,reason", [
    (float("nan"), "non-finite"), ([float("inf")], "non-finite"), (complex(1, float("inf")), "non-finite"),
    (Shifty([1]), "'Shifty' is not a plain literal"), (object(), "not a plain literal"),
    (_self_containing(), "contains itself"), ("x" * 10_001, "too large"), (list(range(10**6)), "too large"),
])
def test_serialize_refuses_what_is_not_plain_data(value, reason):
    with pytest.raises(NotLiteral, match=reason):
        literals.serialize(value)


def test_serialize_refuses_nesting_past_the_depth_limit():
    deep = []
    for _ in range(literals.MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(NotLiteral, match="nested too deeply"):
        literals.serialize(deep)


@pytest.mark.parametrize("text", [
    "x", "f(1)", "__import__('os')", "[...]", "...", "{**a}", "1 + 2", "set([1])", "frozenset(x)", "{[1]: 2}",
    "1e999", "-1e999", "1e999j", "0+1e999j", "0x" + "f" * 4000, "1" * 5000, "[" * 500 + "]" * 500, "-" * 3000 + "1",
    "lambda: 0", "(1)(2)", "'a' 'b' if 1 else 2",
])
def test_parse_refuses_anything_but_a_finite_literal(text):
    with pytest.raises(NotLiteral):
        literals.parse(text)


def test_parse_reads_the_forms_the_serializer_writes():
    assert literals.parse("set()") == set() and literals.parse("frozenset({1, 2})") == frozenset({1, 2})
    assert literals.parse("(-1-2j)") == complex(-1, -2) and literals.parse("-0.0") == 0.0
    assert literals.parse("[1, (2,), {'a': b'x'}]") == [1, (2,), {"a": b"x"}]


def test_which_inputs_iterate_in_a_hash_seed_order():
    assert literals.input_order_depends_on_seed("{'a', 'b'}")
    assert literals.input_order_depends_on_seed("[1, frozenset({('x', 1), ('y', 2)})]")
    assert not literals.input_order_depends_on_seed("{1, 2, 3}, {'a': 1, 'b': 2}, ['x', 'y']")
    assert not literals.input_order_depends_on_seed("{'only'}")
    assert literals.input_order_depends_on_seed("{frozenset({'a'}), frozenset({'b'})}")  # nested: still strings
    assert literals.input_order_depends_on_seed("{(1, frozenset({b'x'})), (2, frozenset())}")


# ---------------------------------------------------------------- verdicts from several runs


def test_runs_agree_only_when_every_run_returned_the_same_text():
    a, b = ExecResult(True, "1"), ExecResult(True, "2")
    boom = ExecResult(False, error="ValueError: x")
    late = ExecResult(False, error="timeout after 5s", timed_out=True)
    assert _agree([a, ExecResult(True, "1")]) == a
    assert _agree([a, b]).nondeterministic and not _agree([a, b]).ok
    for mixed in ([a, boom], [boom, a]):  # either order: one failed and one returned is no verdict
        res = _agree(mixed)
        assert res.nondeterministic and not res.ok and not res.timed_out
    assert _agree([late, a]).timed_out and _agree([late, a]).nondeterministic
    assert _agree([boom, boom]) == boom and not _agree([boom, boom]).nondeterministic
    infra = ExecResult(False, error="sandbox failure: gone", infra=True)
    assert _agree([a, infra]) == infra


def test_number_comparison_never_overflows():
    assert not parsing.numbers_equal(10**399, 0.5) and not parsing.numbers_equal(10**399, 3)
    assert parsing.numbers_equal(10**18, 10**18) and not parsing.numbers_equal(10**18 + 1, float(10**18))
    assert parsing.numbers_equal(0.33333, 1 / 3) and not math.isclose(0.333, 1 / 3, rel_tol=1e-4)
