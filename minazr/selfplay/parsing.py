"""Tolerant extraction of answers, code blocks, literals and numbers from what small models really write.

Every function returns a value, or raises ParseError with a short reason; a parse failure is a normal outcome that
the caller records, never a crash. Nothing here evaluates model text: literals are checked with `ast`, numbers are
parsed by hand.
"""

import ast
import math
import re
from fractions import Fraction

from minazr.sandbox import literals
from minazr.sandbox.code_check import check_inputs

ANSWER_OPEN = re.compile(r"<answer>", re.IGNORECASE)
ANSWER_CLOSE = re.compile(r"</answer>", re.IGNORECASE)
THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)
# ```lang\n body ``` ; the closing fence may be missing at the end of the text
# Every quantifier next to another one that could match the same text is possessive or bounded: model text can
# hold tens of thousands of spaces, and a pattern that re-scans them from each position takes seconds.
FENCE = re.compile(r"```[ \t]*+([A-Za-z0-9_+-]*+)[ \t]*+\n(.*?)(?:```|\Z)", re.DOTALL)
NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d++|(?=\.\d))(?:\.\d+)?(?:[eE][-+]?\d+)?(?:[ \t]{0,3}/[ \t]{0,3}\d+)?")
KEEP_TOP_LEVEL = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)
MAX_NUMBER_CHARS = 400  # far past any float; keeps int() away from Python's 4,300-digit limit


class ParseError(ValueError):
    """The model's text has no usable answer; `str(e)` is a short reason recorded in the metrics."""


def answer_text(text: str) -> str:
    """The content of the last <answer> tag (an unclosed one runs to the end); raises when there is none."""
    opens = list(ANSWER_OPEN.finditer(text))
    if not opens:
        raise ParseError("no <answer> tag")
    rest = text[opens[-1].end():]
    close = ANSWER_CLOSE.search(rest)
    body = (rest[:close.start()] if close else rest).strip()
    if not body:
        raise ParseError("empty <answer>")
    return body


THINK_OPEN_AT_START = re.compile(r"\s*+<think>", re.IGNORECASE)
ANSWER_ONLY = re.compile(r"\s*+<answer>(.*?)</answer>\s*+\Z", re.IGNORECASE | re.DOTALL)


def reasoned_answer(text: str, think_opened: bool = False) -> str:
    """The answer of a completion in AZR's strict format `<think> reasoning </think> <answer> answer </answer>`,
    nothing else around it. `think_opened`: the prompt already opened <think> (the r1 template), so the completion
    starts with the reasoning. Raises ParseError naming what is missing: no reasoning, an unclosed tag (a
    truncated completion), text outside the tags. One pass over the text, whatever it holds."""
    close = THINK_CLOSE.search(text)
    if close is None:
        raise ParseError("no </think>: reasoning missing or cut off")
    head, rest = text[:close.start()], text[close.end():]
    opened = THINK_OPEN_AT_START.match(head)
    if opened is None and not think_opened:
        raise ParseError("no <think> before the reasoning")
    reasoning = head[opened.end():] if opened else head
    if not reasoning.strip():
        raise ParseError("empty <think>")
    m = ANSWER_ONLY.match(rest)
    if m is None:
        if not ANSWER_OPEN.search(rest):
            raise ParseError("no <answer> after </think>")
        if not ANSWER_CLOSE.search(rest):
            raise ParseError("<answer> not closed")
        raise ParseError("text outside <think>...</think><answer>...</answer>")
    body = m.group(1)
    if ANSWER_OPEN.search(body) or ANSWER_CLOSE.search(body) or "<think>" in reasoning.lower():
        raise ParseError("text outside <think>...</think><answer>...</answer>")
    if not body.strip():
        raise ParseError("empty <answer>")
    return body.strip()


def reasoning_chars(text: str, think_opened: bool = False) -> int:
    """Characters of reasoning inside a leading <think> ... </think> (0 when there is none): the think rate counts
    completions with some, and the mean shows whether reasoning is shrinking to a token."""
    close = THINK_CLOSE.search(text)
    if close is None:
        return 0
    opened = THINK_OPEN_AT_START.match(text, 0, close.start())
    if opened is None and not think_opened:
        return 0
    return len(text[opened.end() if opened else 0:close.start()].strip())


def has_reasoning(text: str, think_opened: bool = False) -> bool:
    """Does the completion reason inside <think> ... </think> before anything else (the think rate)?"""
    return reasoning_chars(text, think_opened) > 0


def after_thinking(text: str) -> str:
    """Text after the last </think>, or the whole text: proposals are read from there."""
    closes = list(THINK_CLOSE.finditer(text))
    return text[closes[-1].end():] if closes else text


def blocks(text: str, lang: str) -> list[str]:
    """Bodies of fenced blocks labelled `lang` (for "python", unlabelled and "py" blocks count too)."""
    names = {"python", "py", ""} if lang == "python" else {lang}
    return [m.group(2).strip("\n") for m in FENCE.finditer(text) if m.group(1).lower() in names]


def program(text: str) -> str:
    """The last python block (or the bare text) that defines a top-level `def f`, cleaned of trailing demo code.

    Small models add `print(f(3))` or an `if __name__ == ...` block after the function; those top-level statements
    are dropped (assignments are kept only above `def f`). The result is re-emitted by `ast.unparse`, so comments
    and formatting are normalised.
    """
    candidates = blocks(text, "python") or [text]
    for body in reversed(candidates):
        try:
            tree = ast.parse(body)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        kept, seen_f = [], False
        for stmt in tree.body:
            if isinstance(stmt, KEEP_TOP_LEVEL) or (not seen_f and isinstance(stmt, (ast.Assign, ast.AnnAssign))):
                kept.append(stmt)
            seen_f = seen_f or (isinstance(stmt, ast.FunctionDef) and stmt.name == "f")
        if seen_f:
            tree.body = kept
            try:
                return ast.unparse(tree)
            except (ValueError, RecursionError, MemoryError):  # an int past Python's digit limit, deep nesting
                continue
    raise ParseError("no program defining f" if candidates != [text] else "no python code block")


def literal(text: str) -> str:
    """One Python literal (an output), tolerating `f(...) == X`, `Output: X`, code fences and a trailing period."""
    for cand in _candidates(text):
        if _is_literal(cand):
            return cand
    raise ParseError("answer is not a Python literal")


def arguments(text: str) -> str:
    """An argument list of literals (an input), tolerating `f(1, 2)`, `Input: ...` and code fences."""
    for cand in _candidates(text):
        m = re.fullmatch(r"f\s*\((.*)\)", cand, re.DOTALL)
        cand = m.group(1) if m else cand
        if check_inputs(cand) is None:
            return cand
    raise ParseError("answer is not an argument list of literals")


MAX_CALLS = 32  # calls read from one completion (induction needs a handful)
PROSE_CALL = re.compile(r"(?<![\w.])f\(")


def calls(text: str) -> list[str]:
    """Argument lists of the calls `f(...)` on literals that a completion writes, in order: first in its python
    blocks, outside any `def` or `class` (`f(x)`, `print(f(x))`, `assert f(x) == y`, `result = f(x)`), where a name
    the block assigned a literal at its top level stands for that literal (`x = [1, 2]`, then `f(x)`); then in the
    prose outside the code blocks (`f(2, 3) returns 5`). Small models give inputs this way far more often than in
    an input block. A call on anything but literals is skipped."""
    found = []
    for body in blocks(text, "python"):
        found += _block_calls(body)
    found += _prose_calls(FENCE.sub(" ", text))
    return found[:MAX_CALLS]


def call_arguments(text: str) -> str | None:
    """The arguments of the first call `f(...)` on literals (see `calls`), or None if there is none."""
    found = calls(text)
    return found[0] if found else None


def _block_calls(body: str) -> list[str]:
    try:
        tree = ast.parse(body)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    names, found = {}, []
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
            continue
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "f" \
                    and node.args and not node.keywords:
                args = ", ".join(names.get(a.id, a.id) if isinstance(a, ast.Name)
                                 else ast.get_source_segment(body, a) or "" for a in node.args)
                if check_inputs(args) is None:
                    found.append(args)
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            value = ast.unparse(stmt.value)  # `x = 1, 2` is one tuple: unparse writes "(1, 2)", one argument
            if check_inputs(value) is None:
                names[stmt.targets[0].id] = value
            else:
                names.pop(stmt.targets[0].id, None)
    return found


def _prose_calls(text: str, max_chars: int = 400, max_closes: int = 24) -> list[str]:
    """`f(...)` written in prose: each occurrence is read up to the first `)` that closes a valid call (bounded
    work per occurrence, whatever the text holds)."""
    found = []
    for m in list(PROSE_CALL.finditer(text))[:MAX_CALLS]:
        start, tried = m.start(), 0
        for close in re.finditer(r"\)", text[start:start + max_chars]):
            tried += 1
            if tried > max_closes:
                break
            try:
                call = ast.parse(text[start:start + close.end()], mode="eval").body
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                continue
            if isinstance(call, ast.Call) and call.args and not call.keywords:
                args = text[start + 2:start + close.end() - 1].strip()
                if check_inputs(args) is None:
                    found.append(args)
            break
    return found


HINT_LINE = re.compile(r"^[ \t*#>-]*+(?:hint|message)[ \t*]*+:[ \t*]*+(.+)$", re.IGNORECASE | re.MULTILINE)


def message(text: str) -> str | None:
    """The induction proposer's hint: the last message block, else the last line `Hint: ...` (or `Message:`,
    markdown emphasis allowed) outside the code blocks; None when there is neither."""
    found = [b.strip() for b in blocks(text, "message") if b.strip()]
    if found:
        return found[-1]
    lines = [m.group(1).strip().strip("*").strip() for m in HINT_LINE.finditer(FENCE.sub(" ", text))]
    lines = [ln for ln in lines if ln]
    return lines[-1] if lines else None


PROBLEM_LINE = re.compile(r"^[ \t*#>-]*+problem[ \t*]*+:[ \t*]*+(.*)$", re.IGNORECASE | re.MULTILINE)


ANSWER_LINE = re.compile(r"^[ \t*#>-]*+(?:final[ \t]+)?(?:answer|solution)\b", re.IGNORECASE | re.MULTILINE)


def problem(text: str) -> str | None:
    """The math proposer's problem: the last problem block, else the text after the last `Problem:` (markdown
    emphasis or a heading allowed) up to a blank line or a code block; None when there is neither. Either ends
    before a line that starts with `Answer` or `Solution`: the references show `Answer: N` under each problem, and a
    problem must not hand its solver the answer."""
    found = [_before_answer(b) for b in blocks(text, "problem")]
    if any(found):
        return [b for b in found if b][-1]
    prose = FENCE.sub("\n\n", text)
    for m in reversed(list(PROBLEM_LINE.finditer(prose))):
        rest = prose[m.start(1):]
        if not m.group(1).strip():  # `#### Problem:` with the text on the lines below
            rest = rest.lstrip("\n")
        body = _before_answer(re.split(r"\n[ \t]*\n", rest, maxsplit=1)[0])
        if body:
            return body
    return None


def _before_answer(body: str) -> str:
    return ANSWER_LINE.split(body, maxsplit=1)[0].strip().strip("*\"").strip()


def number(text: str) -> int | float:
    """The last number in `text`: commas, $, %, units and fractions like 3/4 are tolerated. An integer written as
    one ("1,234", "-7") comes back as an int, exactly; anything else as a float."""
    cleaned = text.replace("$", "").replace("\\", " ")
    found = [m.group(0) for m in NUMBER.finditer(cleaned) if re.search(r"\d", m.group(0))]
    if not found:
        raise ParseError("no number in the answer")
    raw = found[-1].replace(",", "").replace(" ", "")
    if len(raw) > MAX_NUMBER_CHARS:
        raise ParseError("number too long")
    try:
        if re.fullmatch(r"[-+]?\d+", raw):
            return int(raw)
        value = float(Fraction(raw)) if "/" in raw else float(raw)
    except (ValueError, ZeroDivisionError, OverflowError):
        raise ParseError("unreadable number") from None
    if not math.isfinite(value):
        raise ParseError("number is not finite")
    return value


def numbers_equal(answer: int | float, gold: int | float, rel: float = 1e-4, abs_tol: float = 0.0) -> bool:
    """An integer gold (or a float with an integer value) must be matched exactly: 123450000 is not 123456789.
    A fractional gold keeps a relative tolerance, so 0.3333 matches 1/3."""
    if isinstance(gold, int) or float(gold).is_integer():
        return answer == gold  # int == float compares exactly, without converting (no overflow)
    try:
        return math.isclose(answer, gold, rel_tol=rel, abs_tol=abs_tol)
    except OverflowError:  # an int answer too large for a float is not close to any fractional gold
        return False


def _candidates(text: str) -> list[str]:
    """Ever looser readings of an answer: whole text, inside a code block, last line, after ':' / '==' / 'is'."""
    text = text.strip()
    out = [text]
    for lang in ("python", "output", "input"):
        out += blocks(text, lang)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if lines:
        out.append(lines[-1])
    for sep in ("==", ":", "=", " is "):
        if sep in text:
            out.append(text.rsplit(sep, 1)[1])
    return [c.strip().strip("`").strip().rstrip(".").strip() for c in out if c.strip()]


def _is_literal(text: str) -> bool:
    return literals.is_literal(text)  # the judge's own reader: every answer accepted here can be compared
