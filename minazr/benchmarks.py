"""Evaluation benchmarks: GSM8K, CRUXEval-O and CRUXEval-I, each read from a JSONL file and scored like training.

Each benchmark item becomes the buffer entry of the matching solver task (GSM8K -> math, CRUXEval-O -> deduction,
CRUXEval-I -> abduction), so the model sees exactly the solver prompt it trains on and is judged by the same code:
  - gsm8k: the final number, compared numerically with the gold after `####` (commas, $, units tolerated);
  - cruxeval-o: the predicted output literal, equal by value to the gold output (compared in the sandbox);
  - cruxeval-i: the predicted argument list x, correct when f(x) == gold output (run in the sandbox).

Answer extraction is strict first (the training format: <answer>...</answer>), then lenient, because small models
write messy text: a missing or unclosed tag, `The answer is $1,234.`, `\\boxed{18}`, `#### 18`, `f(x) == [1, 2]`,
code fences. `Extraction.strict` records which one found the answer (the format rate). Pure: no Ray, no vLLM.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

from minazr import parsing
from minazr.executor import ExecResult, Job
from minazr.parsing import ParseError
from minazr.tasks import make_task
from minazr.tasks.base import Entry

DATA_DIR = Path(__file__).parent / "data"  # shipped copies of ../shared/data, licences beside them
TAIL_CHARS = 20_000  # lenient extraction reads the end of a completion, where answers are (bounds its cost)


class DataError(ValueError):
    """A benchmark file is missing or malformed; the message is one line naming the file (and line)."""


@dataclass(frozen=True)
class Item:
    id: str
    entry: Entry  # the solver task's entry: prompt and judging come from the task
    gold: str  # the gold answer as text, for the per-item log


@dataclass(frozen=True)
class Extraction:
    answer: object  # float for gsm8k, literal / argument-list source text for cruxeval
    strict: bool  # found inside <answer> tags (the training format)


class Benchmark:
    name = ""
    filename = ""
    task = ""  # the solver task that supplies the prompt and the judge
    fields: tuple[str, ...] = ()

    def __init__(self):
        self.solver = make_task(self.task)

    def load(self, data_dir: str | Path | None = None, limit: int | None = None) -> list[Item]:
        """The first `limit` items (all when None) of DATA_DIR/filename; raises DataError on a bad file."""
        path = Path(data_dir or DATA_DIR) / self.filename
        if not path.is_file():
            raise DataError(f"{path}: benchmark file not found (the {self.name} data; see --data-dir)")
        items = []
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"{path}: cannot read: {e}") from None
        for n, line in enumerate(lines, 1):
            if limit is not None and len(items) >= limit:
                break
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise DataError(f"{path}:{n}: not valid JSON") from None
            missing = [f for f in self.fields if not isinstance(row, dict) or not isinstance(row.get(f), str)]
            if missing:
                raise DataError(f"{path}:{n}: missing or non-text field {missing[0]!r}")
            try:
                items.append(self.item(row, n))
            except (ValueError, ParseError) as e:
                raise DataError(f"{path}:{n}: {e}") from None
        if not items:
            raise DataError(f"{path}: no items")
        return items

    def item(self, row: dict, line_no: int) -> Item:
        """One item from one JSON row; raises ValueError with a reason for a malformed row."""
        raise NotImplementedError

    def prompt(self, item: Item) -> str:
        """The solver instruction (before the chat/r1 template), exactly as in training."""
        return self.solver.solve_prompt(item.entry)

    def extract(self, completion: str) -> Extraction:
        """The answer in `completion`, strict (training format) first, then lenient; raises ParseError."""
        try:
            return Extraction(self.solver.parse_answer(completion, None), True)
        except ParseError:
            return Extraction(self.lenient(parsing.after_thinking(completion)), False)

    def lenient(self, text: str):
        raise NotImplementedError

    def jobs(self, item: Item, answer) -> list[Job]:
        return self.solver.check_jobs(item.entry, answer)

    def correct(self, item: Item, answer, results: list[ExecResult]) -> bool:
        return self.solver.judge(item.entry, answer, results)


BENCHMARKS: dict[str, type[Benchmark]] = {}


def register(cls: type[Benchmark]) -> type[Benchmark]:
    BENCHMARKS[cls.name] = cls
    return cls


def get(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise DataError(f"unknown benchmark {name!r} (known: {', '.join(BENCHMARKS)})")
    return BENCHMARKS[name]()


# ---------------------------------------------------------------- GSM8K

GOLD_MARK = "####"
# Phrases that introduce a final answer, strongest first; the first number after the last such phrase wins.
FINAL_ANSWER = [re.compile(p, re.IGNORECASE | re.DOTALL) for p in (
    r"\\boxed\{([^{}]*)\}", r"####\s*([^\n]*)", r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*([^\n]*)")]


def gsm8k_gold(answer: str) -> str:
    """The number after `####` in a GSM8K solution, as plain text ("1,234" -> "1234")."""
    if GOLD_MARK not in answer:
        raise ValueError("no #### line")
    value = parsing.number(answer.rsplit(GOLD_MARK, 1)[1])
    return str(int(value)) if float(value).is_integer() else repr(value)


def final_number(text: str) -> float:
    """The final answer of free text: the first number after \\boxed{, ####, or 'the answer is', else the last
    number."""
    for pattern in FINAL_ANSWER:
        for candidate in reversed(pattern.findall(text)):
            first = next((m.group(0) for m in parsing.NUMBER.finditer(candidate.replace("$", ""))
                          if any(c.isdigit() for c in m.group(0))), None)
            if first is not None:
                try:
                    return parsing.number(first)
                except ParseError:
                    continue
    return parsing.number(text)


@register
class GSM8K(Benchmark):
    name = "gsm8k"
    filename = "gsm8k_test.jsonl"
    task = "math"
    fields = ("question", "answer")

    def item(self, row: dict, line_no: int) -> Item:
        try:
            gold = gsm8k_gold(row["answer"])
        except (ValueError, ParseError):
            raise ValueError("answer has no '#### number' line") from None
        return Item(f"gsm8k_{line_no - 1}", Entry("math", {"problem": row["question"], "answer": gold}, ""), gold)

    def extract(self, completion: str) -> Extraction:
        try:  # inside the tags, a phrase like "the answer is 18" still wins over a later number
            return Extraction(final_number(parsing.answer_text(completion)), True)
        except ParseError:
            return Extraction(self.lenient(parsing.after_thinking(completion)), False)

    def lenient(self, text: str) -> float:
        return final_number(text)


# ---------------------------------------------------------------- CRUXEval


class _CruxEval(Benchmark):
    filename = "cruxeval.jsonl"
    fields = ("id", "code", "input", "output")

    def item(self, row: dict, line_no: int) -> Item:
        data = {"program": row["code"], "inputs": row["input"], "output": row["output"]}
        gold = row["output"] if self.name == "cruxeval-o" else row["input"]
        return Item(row["id"], Entry(self.task, data, ""), gold)


@register
class CruxEvalO(_CruxEval):
    """Output prediction: the solver sees f and the input (the deduction prompt)."""

    name = "cruxeval-o"
    task = "deduction"

    def lenient(self, text: str) -> str:
        return _first_that(parsing.literal, [_strip_call(text), *_inline_code(text), text])


@register
class CruxEvalI(_CruxEval):
    """Input prediction: the solver sees f and the output (the abduction prompt)."""

    name = "cruxeval-i"
    task = "abduction"

    def lenient(self, text: str) -> str:
        # `f('abc') == 'ABC'` states the input as a call: keep the left side
        calls = re.findall(r"\bf[ \t]{0,3}\((.{0,2000}?)\)[ \t]{0,3}==", text[-TAIL_CHARS:], re.DOTALL)
        return _first_that(parsing.arguments, [*calls[-1:], *_inline_code(text), text])


def _strip_call(text: str) -> str:
    """`assert f(x) == 42` / `f('a') == 'b'` -> the right side, the predicted output."""
    m = list(re.finditer(r"\bf[ \t]{0,3}\(.{0,2000}?\)[ \t]{0,3}==[ \t]*+(.+)", text[-TAIL_CHARS:]))
    return m[-1].group(1).strip() if m else text


def _inline_code(text: str) -> list[str]:
    """Inline `code` spans, last first: The output is `'abc'`."""
    return re.findall(r"(?<!`)`([^`\n]+)`(?!`)", text)[::-1]


def _first_that(parse, candidates: list[str]):
    for cand in candidates[:-1]:
        try:
            return parse(cand)
        except ParseError:
            continue
    return parse(candidates[-1])  # its ParseError is the reason recorded
