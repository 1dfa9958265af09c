"""Tolerant parsing of what small models write; every failure has a reason."""

import pytest

from minazr.selfplay import parsing
from minazr.selfplay.parsing import ParseError
from minazr.sandbox.code_check import check_inputs
from hypothesis import given, settings, strategies as st


def test_answer_tags():
    assert parsing.answer_text("<think>hm</think> <answer> 42 </answer>") == "42"
    assert parsing.answer_text("<answer>1</answer> then <ANSWER>2</ANSWER>") == "2"  # the last one
    assert parsing.answer_text("reasoning... <answer>[1, 2]") == "[1, 2]"  # missing closing tag
    for text, reason in (("no tags at all", "no <answer> tag"), ("<answer> </answer>", "empty <answer>")):
        with pytest.raises(ParseError, match=reason):
            parsing.answer_text(text)


def test_program_picks_the_block_with_f_and_drops_demo_code():
    text = ("Here is a helper:\n```python\ndef g(x):\n    return x\n```\nAnd the program:\n"
            "```python\nimport math  # needed\nK = 2\ndef f(x):\n    return math.floor(x) * K\n\nprint(f(3.5))\n"
            "if __name__ == '__main__':\n    f(1)\n```\nDone.")
    assert parsing.program(text) == "import math\nK = 2\n\ndef f(x):\n    return math.floor(x) * K"


def test_program_tolerates_missing_fence_and_bare_code():
    assert "def f(a)" in parsing.program("```python\ndef f(a):\n    return a + 1\n")
    assert "def f(a)" in parsing.program("def f(a):\n    return a")
    with pytest.raises(ParseError, match="no program defining f"):
        parsing.program("```python\ndef g(): pass\n```")
    with pytest.raises(ParseError, match="no python code block"):
        parsing.program("just words")


@pytest.mark.parametrize("text,want", [
    ("12", "12"), ("'abc'", "'abc'"), ("[1, 2, 3].", "[1, 2, 3]"), ("f('x') == 'xx'", "'xx'"),
    ("The output is:\n```python\n{'a': 1}\n```", "{'a': 1}"), ("Output: (1, 'b')", "(1, 'b')"),
    ("`True`", "True"), ("The answer is 7", "7"),
])
def test_literal(text, want):
    assert parsing.literal(text) == want


def test_literal_rejects_code():
    with pytest.raises(ParseError, match="not a Python literal"):
        parsing.literal("__import__('os').system('x')")


@pytest.mark.parametrize("text,want", [
    ("'abc', 3", "'abc', 3"), ("f([1, 2])", "[1, 2]"), ("Input: 5", "5"), ("```input\n'a', {'k': 1}\n```",
                                                                           "'a', {'k': 1}"),
])
def test_arguments(text, want):
    assert parsing.arguments(text) == want


@pytest.mark.parametrize("text,want", [
    ("42", 42.0), ("The answer is 1,234 apples", 1234.0), ("$5.50", 5.5), ("3/4", 0.75), ("-2", -2.0),
    ("x = 10, so y = 20", 20.0), ("1e3", 1000.0), ("\\boxed{18}", 18.0),
])
def test_number(text, want):
    assert parsing.number(text) == pytest.approx(want)


def test_number_failures():
    with pytest.raises(ParseError, match="no number"):
        parsing.number("none")
    assert parsing.numbers_equal(0.1 + 0.2, 0.3) and not parsing.numbers_equal(7.0, 7.01)


@pytest.mark.parametrize("text, want", [
    ("```python\ndef f(a, n):\n    return a[:n]\n\nassert f([1, 2, 3], 2) == [1, 2]\n```", "[1, 2, 3], 2"),
    ("```python\ndef f(s):\n    return s[::-1]\nprint(f('abc'))\n```", "'abc'"),
    ("```python\ndef f(n):\n    return f(n - 1) if n else 0\nresult = f(5)\n```", "5"),  # not the recursive call
    ("```python\ndef f(n):\n    return n\n```", None),
    ("```python\ndef f(n):\n    return n\nx = 3\nprint(f(x))\n```", "3"),  # a name the block set to a literal
    ("```python\ndef f(n):\n    return n\nx = 3\nx = g()\nprint(f(x))\n```", None),  # rebound: not a literal
    ("```python\ndef f(n):\n    return n\nprint(f(y))\n```", None),  # a name it never set
    ("```python\ndef f(t):\n    return t\nx = 1, 2\nf(x)\n```", "(1, 2)"),  # one tuple argument, not two
    ("no code, just f(3)", "3"),  # prose
    ("f(x) is called on f('a)b', [1, 2]) here", "'a)b', [1, 2]"),  # the `)` inside a string does not end it
    ("```python\ndef f(n):\n    return n\n```\nThen f(2, 3) returns 5", "2, 3"),
    ("see f(a=3) and f(open('x'))", None),  # keywords and non-literals are no input
])
def test_call_arguments(text, want):
    assert parsing.call_arguments(text) == want


def test_calls_reads_every_call_in_order_blocks_first():
    text = "Calls: f(9)\n```python\nf(1)\nprint(f([2, 3]))\nassert f('x') == 'y'\nf(z)\n```"
    assert parsing.calls(text) == ["1", "[2, 3]", "'x'", "9"]


@given(st.text(alphabet="f()[]'\", 0123abc\n`", max_size=400))
@settings(max_examples=300, deadline=None)
def test_calls_only_returns_literal_argument_lists(text):
    for args in parsing.calls(text):
        assert check_inputs(args) is None


@pytest.mark.parametrize("text, want", [
    ("```python\nf(1)\n```\nHint: it doubles the number.", "it doubles the number."),
    ("**Hint:** counts the vowels", "counts the vowels"),
    ("Message: sums it\n```message\nfrom the block\n```", "from the block"),
    ("- hint: first\nHint: second", "second"),
    ("```python\n# Hint: inside code\n```", None),
    ("no hint here", None),
])
def test_message(text, want):
    assert parsing.message(text) == want


@pytest.mark.parametrize("text, want", [
    ("Problem: A box holds 3 rows of 4 eggs. How many eggs?\n```python\ndef f():\n    return 12\n```",
     "A box holds 3 rows of 4 eggs. How many eggs?"),
    ("#### Problem:\nTom has 3 apples.\nHe buys 4.\n\n#### Solution", "Tom has 3 apples.\nHe buys 4."),
    ("**Problem:** Sam reads 5 pages a day. How many in a week?", "Sam reads 5 pages a day. How many in a week?"),
    ("Problem: old\n```problem\nfrom the block\n```", "from the block"),
    ("```python\n# Problem: in code\ndef f():\n    return 1\n```", None),
    ("no problem here", None),
    # the references show `Answer: N` under each problem; a copied answer line is not part of the problem
    ("Problem: Tom has 3 apples and buys 4.\nAnswer: 7\n```python\ndef f():\n    return 7\n```",
     "Tom has 3 apples and buys 4."),
    ("### Problem:\nTom has 3 apples.\n**Final answer:** 7", "Tom has 3 apples."),
    ("```problem\nTom has 3 apples.\nSolution: 3 + 4 = 7\n```", "Tom has 3 apples."),
    ("Problem: Answer: 7", None),
])
def test_problem(text, want):
    assert parsing.problem(text) == want
