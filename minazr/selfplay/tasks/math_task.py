"""The seed project's math task, made verifiable.

The proposer writes a word problem and a `def f():` that computes its answer; the executor runs f (twice, in
separate processes) and its numeric return value is the gold answer. Whatever answer the proposer claims itself is
ignored. The solver answers <answer>number</answer>: an integer gold must be matched exactly, a fractional one
within a relative tolerance of 1e-4 (parsing.numbers_equal).
"""

import random
import re

from minazr.sandbox import literals
from minazr.selfplay import parsing, prompts
from minazr.sandbox.executor import ExecResult, Job, Run
from minazr.selfplay.parsing import ParseError
from minazr.selfplay.tasks import register
from minazr.selfplay.tasks.base import Entry, Invalid, Task, digest, short_reason

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


def _states(problem: str, gold: int | float) -> bool:
    """Whether the problem gives away its answer: `answer` (is, =, :) followed by the gold number."""
    for m in re.finditer(r"\banswer\b\W{0,4}(?:is\W{0,3})?\$?([-+]?\d[\d,]*(?:\.\d+)?)", problem, re.IGNORECASE):
        try:
            if parsing.numbers_equal(parsing.number(m.group(1)), gold):
                return True
        except ParseError:
            continue
    return False


@register
class MathTask(Task):
    name = "math"

    def propose_context(self, buffers, rng: random.Random) -> dict:
        refs = buffers[self.name].sample(self.settings.get("k_references", 6), rng)
        return {"references": [e.data for e in refs]}

    def propose_prompt(self, context: dict) -> str:
        refs = "\n\n".join(prompts.math_reference(d) for d in context["references"]) or "(none yet)"
        return prompts.PROPOSE_MATH.format(references=refs)

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
