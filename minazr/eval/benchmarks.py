"""Evaluation benchmarks: GSM8K, CRUXEval-O and CRUXEval-I, each read from a JSONL file, in two prompt styles.

- Standard (harness) prompts, the figures to compare with published ones (minazr/eval/harness.py):
    gsm8k            zero-shot chain of thought, final answer "The answer is N";
    cruxeval-o/-i    CRUXEval's harness format, few-shot, direct answer `[ANSWER] assert f(x) == y [/ANSWER]`;
    cruxeval-o-cot/-i-cot  the same with `[THOUGHT] ... [/THOUGHT]` reasoning first.
- In-format prompts (`-train`): each item becomes the buffer entry of the matching solver task (GSM8K -> math,
  CRUXEval-O -> deduction, CRUXEval-I -> abduction), so the model sees exactly the solver prompt it trains on:
    gsm8k-train, cruxeval-o-train, cruxeval-i-train.
Every style is judged by the training task's code: GSM8K's final number compared numerically with the gold after
`####`; CRUXEval-O's literal equal by value to the gold output (no code runs); CRUXEval-I's input x correct when
f(x) == gold output (f runs in the sandbox). `Extraction.strict` records whether the answer came in the prompt's
own format (the format rate); lenient readings catch the messy forms small models write. Pure: no Ray, no vLLM.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

from minazr.eval import harness
from minazr.selfplay import parsing
from minazr.sandbox.executor import ExecResult, Job
from minazr.selfplay.parsing import ParseError
from minazr.selfplay.tasks import make_task
from minazr.selfplay.tasks.base import Entry

DATA_DIR = Path(__file__).parents[1] / "data"  # shipped copies of ../shared/data, licences beside them
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
    stop: tuple[str, ...] = ()  # generation stops at any of these (not included in the completion)
    max_tokens: int | None = None  # a cap below eval.max_tokens, for prompts whose answer is short

    def __init__(self):
        self.solver = make_task(self.task, answer_format="answer")  # reasoning optional: the format rate tells

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

    def render(self, item: Item, render) -> str:
        """The text the engine sees: the training prompt wrapped by `render` (a prompts.Renderer)."""
        return render(self.prompt(item))

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
class GSM8KTrain(Benchmark):
    """The math solver's training prompt."""

    name = "gsm8k-train"
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
        gold = row["output"] if self.task == "deduction" else row["input"]
        return Item(row["id"], Entry(self.task, data, ""), gold)


@register
class CruxEvalOTrain(_CruxEval):
    """Output prediction: the solver sees f and the input (the deduction prompt)."""

    name = "cruxeval-o-train"
    task = "deduction"

    def lenient(self, text: str) -> str:
        return _first_that(parsing.literal, [_strip_call(text), *_inline_code(text), text])


@register
class CruxEvalITrain(_CruxEval):
    """Input prediction: the solver sees f and the output (the abduction prompt)."""

    name = "cruxeval-i-train"
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


# ---------------------------------------------------------------- standard (harness) prompts


@register
class GSM8K(GSM8KTrain):
    """Zero-shot chain of thought; the chat template without our system prompt for instruct models."""

    name = "gsm8k"
    stop = harness.STOP_GSM8K_RAW

    def render(self, item: Item, render) -> str:
        question = item.entry.data["problem"]
        if getattr(render, "template", None) == "chat":
            return render.plain(harness.gsm8k_instruction(question))
        return harness.gsm8k_raw(question)

    def extract(self, completion: str) -> Extraction:
        strict = harness.ANSWER_IS.search(completion) is not None
        return Extraction(final_number(completion), strict)


class _CruxHarness(_CruxEval):
    stop = harness.STOP_CRUX
    predict = "output"
    cot = False

    def render(self, item: Item, render) -> str:  # raw text for every model, as in the harness
        d = item.entry.data
        return harness.cruxeval_prompt(d["program"], d["inputs"], d["output"], self.predict, self.cot)

    def extract(self, completion: str) -> Extraction:
        return Extraction(*harness.extract(completion, self.cot, self.predict))


@register
class CruxEvalO(_CruxHarness):
    name = "cruxeval-o"
    task = "deduction"
    max_tokens = 256


@register
class CruxEvalOCot(_CruxHarness):
    name = "cruxeval-o-cot"
    task = "deduction"
    cot = True


@register
class CruxEvalI(_CruxHarness):
    name = "cruxeval-i"
    task = "abduction"
    predict = "input"
    max_tokens = 256


@register
class CruxEvalICot(_CruxHarness):
    name = "cruxeval-i-cot"
    task = "abduction"
    predict = "input"
    cot = True
