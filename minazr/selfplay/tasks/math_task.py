"""The seed project's math task, made verifiable.

The proposer writes a word problem and a `def f():` that computes its answer; the executor runs f (twice, in
separate processes) and its numeric return value is the gold answer. Whatever answer the proposer claims itself is
ignored. The solver answers <answer>number</answer>: an integer gold must be matched exactly, a fractional one
within a relative tolerance of 1e-4 (parsing.numbers_equal).

A problem is invalid when it states its answer (the gold value appears in it as a number, in digits or in words:
`7`, `Result: 7`, `seven`, `twenty-one`), and when its answer does not follow from the quantities it states: f
must use one of the problem's numbers, and changing those numbers in f must change the answer (a guessing game,
"think of a number from 1 to 4" with `return 3`, is not a problem).
"""

import ast
import difflib
import random
import re

from minazr.sandbox import literals
from minazr.selfplay import parsing, prompts
from minazr.sandbox.executor import ExecResult, Job, Run
from minazr.selfplay.parsing import ParseError
from minazr.selfplay.tasks import register
from minazr.selfplay.tasks.base import RESEMBLES, Entry, Invalid, Task, digest, short_reason

MAX_PROBLEM_CHARS = 2000
PLACEHOLDER_PROBLEMS = {t.lower().strip(" .`") for t in prompts.PLACEHOLDER_PROBLEMS}
MAX_ANSWER = 10**15  # larger answers are not word-problem answers (and lose precision as floats)


def _gold(text: str) -> int | float | None:
    """The executor's output as a number: an int or a float (never a bool), else None."""
    try:
        value = literals.parse(text)
    except literals.NotLiteral:
        return None
    return value if type(value) in (int, float) else None  # literals never holds a non-finite float


def _words(problem: str) -> str:
    """A problem's words, lower-cased, without punctuation: `buys 4 more. How` and `buys 4 more, how` are one."""
    return " ".join(re.findall(r"[^\W_]+(?:\.\d+)?", problem.lower()))


UNITS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve thirteen "
                                    "fourteen fifteen sixteen seventeen eighteen nineteen".split())}
TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if i > 1}
SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6}


PRONOUN_ONE = {"no", "any", "every", "some", "each", "which", "the", "this", "that", "another"}  # "no one" is no 1


def stated_numbers(problem: str) -> list[int | float]:
    """Every number a problem states: in digits (`1,200`, `3.5`, `-4`) and in words (`seven`, `twenty-one`,
    `three hundred and five`, `a hundred`, `a dozen`). Punctuation ends a number: `one, two or three` is 1, 2, 3."""
    out: list[int | float] = []
    for m in re.finditer(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?", problem):
        try:
            out.append(parsing.number(m.group(0).replace(",", "")))
        except ParseError:
            continue
    total = current = None  # the number being read: total of finished thousands, current below a thousand
    last = ""  # the kind of the previous number word: unit, teen, tens, hundred
    tokens = re.findall(r"[a-z]+|[^\sa-z-]", problem.lower()) + ["."]
    for i, w in enumerate(tokens):
        prev = tokens[i - 1] if i else ""
        if w in UNITS and not (w == "one" and prev in PRONOUN_ONE):
            kind = "teen" if UNITS[w] >= 10 else "unit"
            if current is not None and (last in ("unit", "teen") or (last == "tens" and kind == "teen")):
                out.append((total or 0) + current)  # "two three": two numbers
                total = current = None
            current = (current or 0) + UNITS[w]
            last = kind
        elif w in TENS:
            if current is not None and last in ("unit", "teen", "tens"):
                out.append((total or 0) + current)
                total = current = None
            current, last = (current or 0) + TENS[w], "tens"
        elif w == "hundred" and (current is not None or prev == "a"):
            current, last = (current or 1) * 100, "hundred"
        elif w in ("thousand", "million") and (current is not None or prev == "a"):
            total, current, last = (total or 0) + (current or 1) * SCALES[w], None, "scale"
        elif w == "and" and last in ("hundred", "scale") and i + 1 < len(tokens) \
                and (tokens[i + 1] in UNITS or tokens[i + 1] in TENS):
            continue  # "three hundred and five"
        else:
            if current is not None or total is not None:
                out.append((total or 0) + (current or 0))
            total = current = None
            last = ""
            if w == "dozen":
                out.append(12)
    return out


def _states(problem: str, gold: int | float) -> bool:
    """Whether the problem gives away its answer: the gold value is one of the numbers it states."""
    return any(parsing.numbers_equal(n, gold) for n in stated_numbers(problem))


def perturbed_programs(program: str, problem: str, limit: int = 4) -> list[str] | None:
    """f with one of the problem's numbers changed (each stated number f uses, up to `limit`), or None when f
    uses none of them."""
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    stated = stated_numbers(problem)
    negated = {id(n.operand) for n in ast.walk(tree) if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub)}
    nodes = [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and type(n.value) in (int, float)
             and any(parsing.numbers_equal(-n.value if id(n) in negated else n.value, x) for x in stated)]
    if not nodes:
        return None
    out = []
    for node in nodes:
        old = node.value
        node.value = old + 1 if type(old) is int else old * 1.5 + 1
        text = ast.unparse(tree)
        node.value = old
        if text not in out:
            out.append(text)
        if len(out) == limit:
            break
    return out


@register
class MathTask(Task):
    name = "math"

    def propose_context(self, buffers, rng: random.Random) -> dict:
        refs = buffers[self.name].sample(self.settings.get("k_references", 6), rng)
        return {"references": [e.data for e in refs]}

    def propose_prompt(self, context: dict) -> str:
        refs = "\n\n".join(prompts.math_reference(d) for d in context["references"]) or "(none yet)"
        return prompts.PROPOSE_MATH.format(references=refs)

    def resembles(self, proposal: dict, known: list[dict]) -> bool:
        """A rejected problem whose words are a known problem's, edited (difflib ratio over words)."""
        words = _words(proposal["problem"]).split()
        return any(difflib.SequenceMatcher(None, words, _words(other["problem"]).split(), autojunk=False).ratio()
                   >= RESEMBLES for other in known)

    def parse_proposal(self, text: str, context: dict) -> dict:
        text = parsing.after_thinking(text)
        problem = parsing.problem(text)
        if problem is None:
            raise ParseError("no problem (a line starting with Problem:, or a problem block)")
        if problem.lower().strip(" .`") in PLACEHOLDER_PROBLEMS:
            raise ParseError("problem is the template's placeholder")
        if len(problem) > MAX_PROBLEM_CHARS:
            raise ParseError("problem too long")
        return {"problem": problem, "program": parsing.program(text)}

    def validation_jobs(self, proposal: dict) -> list[Job]:
        return [Run(proposal["program"], "")]

    def make_entry(self, proposal: dict, results: list[ExecResult], step: int, seed: bool = False) -> Entry:
        (res,) = results
        if not res.ok:
            raise Invalid(short_reason(res.error))
        value = _gold(res.output)
        if value is None or abs(value) > MAX_ANSWER:  # int vs int: no float conversion that could overflow
            raise Invalid("answer is not a number" if value is None else "answer too large")
        if _states(proposal["problem"], value):
            raise Invalid("the problem states its answer")
        return Entry(self.name, {**proposal, "answer": res.output}, digest(_words(proposal["problem"])), step, seed)

    def followup_jobs(self, entry: Entry) -> list[Job]:
        """f with the problem's numbers changed: the answer must follow from them. [] fails the proposal."""
        changed = perturbed_programs(entry.data["program"], entry.data["problem"])
        if not changed:
            raise Invalid("trivial: the program uses none of the problem's numbers")
        return [Run(code, "", probe=True) for code in changed]

    def check_followup(self, entry: Entry, results: list[ExecResult]) -> None:
        gold = _gold(entry.data["answer"])
        if not any(r.ok and (value := _gold(r.output)) is not None and not parsing.numbers_equal(value, gold)
                   for r in results):
            raise Invalid("trivial: the answer does not depend on the problem's numbers")

    def novelty_key(self, data: dict) -> str:
        return "problem:" + _words(data["problem"])

    def solve_prompt(self, entry: Entry) -> str:
        return prompts.SOLVE_MATH.format(problem=entry.data["problem"])

    def parse_answer(self, text: str, entry: Entry) -> float:
        return parsing.number(self.answer_body(text))

    def check_jobs(self, entry: Entry, answer: float) -> list[Job]:
        return []  # a number against a number: no model code to run

    def judge(self, entry: Entry, answer: float, results: list[ExecResult]) -> bool:
        gold = _gold(entry.data["answer"])
        return gold is not None and parsing.numbers_equal(answer, gold)

    def seed_proposals(self) -> list[tuple[dict, dict]]:
        problem = "Tom has 3 apples and buys 4 more. How many apples does he have now?"
        return [({"problem": problem, "program": "def f():\n    return 3 + 4"}, {})]
