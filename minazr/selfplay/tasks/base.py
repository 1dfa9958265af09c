"""What every task type provides to the self-play step, and the buffer entry they share.

A task turns buffer entries into proposer prompts, model text into a proposal, a proposal plus executor results
into a new buffer entry, an entry into a solver prompt, and model text plus executor results into a verdict.
Executor work is returned as lists of jobs, so the step can send a whole phase to the sandbox pool in one batch.
"""

import ast
import difflib
import functools
import hashlib
import random
import re
from dataclasses import dataclass, field

from minazr.sandbox import literals
from minazr.selfplay import parsing
from minazr.sandbox.executor import ExecResult, Job


@dataclass
class Entry:
    """One validated task in a buffer. `data` is task-specific and JSON-serialisable; `key` deduplicates."""

    task: str
    data: dict
    key: str
    step: int = 0
    seed: bool = False  # put there by seeding, not proposed by the model: retired once the buffer has enough
    # how the solver fared on it: draws (answer groups, Monte-Carlo ones included), answers, correct answers, and
    # the last group's solve rate (None before any); the curriculum draws from these (TaskBuffer.draw)
    stats: dict = field(default_factory=dict)


class Invalid(ValueError):
    """A proposal that parsed but failed validation; `str(e)` is the short reason recorded in the metrics."""


@dataclass
class Task:
    """Base class; subclasses set `name` and implement the methods below."""

    name: str = ""
    settings: dict = field(default_factory=dict)  # task options from the config (see SelfPlayConfig)
    # True when check_jobs run the proposer's program (abduction): if it returns two different outputs for a
    # solver's input, the task itself is flawed, and the step retracts it instead of scoring the answer.
    checks_proposer_program = False

    # ---- proposer
    def propose_context(self, buffers, rng: random.Random) -> dict:
        """What the proposer prompt is conditioned on (references, or the program to write inputs for)."""
        raise NotImplementedError

    def propose_prompt(self, context: dict) -> str:
        raise NotImplementedError

    def parse_proposal(self, text: str, context: dict) -> dict:
        """The proposal's fields; raises ParseError with a reason."""
        raise NotImplementedError

    def validation_jobs(self, proposal: dict) -> list[Job]:
        raise NotImplementedError

    def make_entry(self, proposal: dict, results: list[ExecResult], step: int, seed: bool = False) -> Entry:
        """A buffer entry whose gold answers come from the executor; raises Invalid with a reason. `seed`: a
        seeding entry (AZR's identity triplet), exempt from the checks for trivial tasks."""
        raise NotImplementedError

    def novelty_key(self, data: dict) -> str:
        """What makes a task new: a proposal whose key equals a buffer entry's (or a reference's) is a copy."""
        raise NotImplementedError

    def near_copy(self, data: dict, other: dict) -> bool:
        """Is a task (its entry data) a near-copy of another task of this type, though their novelty keys differ?"""
        return False

    def resembles(self, proposal: dict, known: list[dict]) -> bool:
        """Is a proposal the sandbox rejected one of these known tasks (entry data: the references its prompt showed
        and the task's buffer), edited? A broken copy is a copy: it earns the duplicate penalty, not the higher
        reward of an honest failure."""
        return False

    def behaviour_jobs(self, proposal: dict, context: dict) -> list[Job]:
        """Runs that compare the proposal with the references its prompt showed (run with the validation jobs)."""
        return []

    def copies_a_reference(self, proposal: dict, context: dict, results: list[ExecResult]) -> bool:
        """From the results of behaviour_jobs: does the proposal behave exactly like a reference it was shown?"""
        return False

    def followup_jobs(self, entry: Entry) -> list[Job]:
        """Runs that need the entry's gold answer (run after validation, in one more batch)."""
        return []

    def check_followup(self, entry: Entry, results: list[ExecResult]) -> None:
        """Raises Invalid when the follow-up runs show the task is trivial."""

    # ---- solver
    def solve_prompt(self, entry: Entry) -> str:
        raise NotImplementedError

    def answer_body(self, text: str) -> str:
        """The text inside <answer>: with `answer_format: think` (default) only in AZR's strict
        <think>...</think><answer>...</answer> form, else from any <answer> tag. Raises ParseError."""
        if self.settings.get("answer_format", "think") == "think":
            return parsing.reasoned_answer(text, self.settings.get("think_opened", False))
        return parsing.answer_text(text)

    def parse_answer(self, text: str, entry: Entry):
        """The answer in the model's text; raises ParseError with a reason."""
        raise NotImplementedError

    def check_jobs(self, entry: Entry, answer) -> list[Job]:
        raise NotImplementedError

    def judge(self, entry: Entry, answer, results: list[ExecResult]) -> bool:
        """Correct or not, from the verdicts the executor computed (ExecResult.match), never from model text."""
        raise NotImplementedError

    # ---- seeding
    def seed_proposals(self) -> list[tuple[dict, dict]]:
        """(proposal, context) pairs validated like model proposals to seed an empty buffer."""
        raise NotImplementedError


@functools.lru_cache(maxsize=1 << 14)
def normalized_program(code: str) -> str:
    """A canonical form of a program: AST without docstrings, with bound names renamed in order of appearance.
    Raises Invalid for a program that cannot be normalised (parsing.program already printed it, so this is rare).
    Cached: the novelty check normalises every buffer entry's program each step."""
    try:
        return _normalized_program(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise Invalid(f"program cannot be normalised ({type(e).__name__})") from None


def _normalized_program(code: str) -> str:
    return ast.dump(_renamed(code), annotate_fields=False)


RESEMBLES = 0.9  # share of the shorter program's tokens found, in order, in the other: an edited copy
MIN_TOKENS = 16  # bodies shorter than this resemble nothing (their exact copies: by novelty key)
MIN_LENGTH_RATIO = 1 / 3  # a program three times longer than the other is no edit of it


def resemblance(a: str, b: str) -> float:
    """How much of one program is the other, 0..1: the share of the shorter one's tokens that difflib finds, in
    order, in the longer one. Tokens come from the programs with docstrings dropped and every bound name written
    `v` (so renaming, or a throwaway line that would renumber the names, changes nothing), less the `def f(...):`
    line that every program has; from the raw text when one does not parse. Padding a copy does not dilute this
    (it is measured on the shorter side); bodies under MIN_TOKENS tokens, or a third of the other's length, score 0
    (an exact copy of a short program is caught by its novelty key instead)."""
    ta, tb = _tokens(a), _tokens(b)
    short, long_ = sorted((len(ta), len(tb)))
    if short < MIN_TOKENS or short < MIN_LENGTH_RATIO * long_:
        return 0.0  # `return b` is no edit of `return a`: a short program is a copy only by its novelty key
    blocks = difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_matching_blocks()
    return sum(b.size for b in blocks) / short


@functools.lru_cache(maxsize=1 << 12)
def _tokens(code: str) -> tuple[str, ...]:
    try:
        code = ast.unparse(_renamed(code))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        pass
    body = "\n".join(line for line in code.splitlines() if not _HEADER.match(line))  # every f starts alike
    return tuple("v" if _BOUND.fullmatch(t) else t for t in re.findall(r"\w+|[^\w\s]", body))


_HEADER = re.compile(r"\s*def f\(.*\):\s*$")
_BOUND = re.compile(r"v\d+")


def _renamed(code: str) -> ast.AST:
    tree = ast.parse(code)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.arg):
            name = node.arg
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            name = node.id
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name != "f":
            name = node.name
        if name and name not in bound:
            bound[name] = f"v{len(bound)}"
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.arg in bound:
            node.arg = bound[node.arg]
        elif isinstance(node, ast.Name) and node.id in bound:
            node.id = bound[node.id]
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in bound:
            node.name = bound[node.name]
    return tree


def normalized_literals(args: str) -> str:
    """A canonical form of an argument list of literals (checked ones: code_check.check_inputs accepted them)."""
    call = ast.parse(f"f({args})", mode="eval").body
    try:
        return literals.serialize([literals.node_value(a) for a in call.args], max_chars=10**6) + repr(
            sorted((k.arg, literals.serialize(literals.node_value(k.value), max_chars=10**6)) for k in call.keywords))
    except literals.NotLiteral as e:
        raise Invalid(f"inputs cannot be normalised ({e})") from None


def digest(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:24]


def short_reason(error: str | None) -> str:
    """Collapse an executor error into a category for the metrics: 'timeout', 'NameError', 'banned module'..."""
    if not error:
        return "unknown"
    text = error.removeprefix("rejected: ")
    for marker in (" (", " '", ":"):
        text = text.split(marker, 1)[0]
    return text.strip() or "unknown"
