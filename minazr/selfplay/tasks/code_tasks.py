"""AZR's three code tasks over Python programs `f`.

- deduction: propose (program, input); the executor computes the output; solve: predict the output, correct when
  it equals the gold output by value (both are literals, compared by the executor without running anything).
- abduction: propose (program, input); the executor computes the output; solve: give any input x, correct when
  f(x) == gold output by value (f runs in the sandbox, twice; the comparison happens outside it).
- induction: given a program from the deduction and abduction buffers, propose N inputs and a message; the executor
  computes the outputs; solve: from the message and the visible half of the pairs write a program that passes the
  hidden half.

A proposal is rejected as trivial (its reason starts with "trivial:") when its output is None, is the input
itself, or does not depend on the input (the same output on the probe inputs of tasks/probes.py; for induction,
the same output for every input); and when its input is a template's placeholder text.
"""

import ast
import math
import random

from minazr.selfplay import parsing, prompts
from minazr.sandbox.executor import Check, Equal, ExecResult, Job, Run
from minazr.sandbox.code_check import check_inputs
from minazr.selfplay.parsing import ParseError
from minazr.selfplay.tasks import giveaways, probes, register
from minazr.selfplay.tasks.base import (RESEMBLES, Entry, Invalid, Task, digest, normalized_literals, normalized_program,
                                      resemblance, short_reason)

IDENTITY = "def f(a):\n    return a"
PROGRAM_TASKS = ("deduction", "abduction")  # whose programs induction writes inputs for
NEAR_COPY = 0.75  # share of compared inputs on which a proposal returns what a reference returns: a copy
MOST_INPUTS = 0.9  # abduction: share of (5 or more) probe inputs giving the task's output: any input solves it


def _placeholders() -> set[str]:
    out = set()
    for text in prompts.PLACEHOLDER_INPUTS:
        try:
            out.add(normalized_literals(text))
        except (Invalid, SyntaxError, ValueError):
            out.add(text)
    return out


PLACEHOLDERS = _placeholders()
_PLACEHOLDER_TEXTS = {t.lower() for t in prompts.PLACEHOLDER_INPUTS}
PLACEHOLDER_MESSAGES = {t.lower().strip(" .`") for t in prompts.PLACEHOLDER_MESSAGES}


def is_placeholder(args: str) -> bool:
    """Is this input (a checked argument list, or raw block text) one of the templates' placeholders?"""
    if args.strip().lower() in _PLACEHOLDER_TEXTS:
        return True
    try:
        return normalized_literals(args) in PLACEHOLDERS
    except (Invalid, SyntaxError, ValueError):
        return False


def has_keywords(args: str) -> bool:
    """Inputs are positional literals: keyword arguments would slip past the probes of tasks/probes.py."""
    try:
        return bool(ast.parse(f"f({args})", mode="eval").body.keywords)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return True


def trivial_output(inputs: str, output: str) -> str | None:
    """Why an output makes a task trivial, or None."""
    if output == "None":
        return "trivial: returns None"
    if probes.returns_input(inputs, output):
        return "trivial: returns its input"
    return None


class _ProgramInputTask(Task):
    """Shared by deduction and abduction: both propose a program with one input, conditioned on K references."""

    def propose_context(self, buffers, rng: random.Random) -> dict:
        refs = buffers[self.name].sample(self.settings.get("k_references", 6), rng)
        return {"references": [e.data for e in refs]}

    def propose_prompt(self, context: dict) -> str:
        style = self.settings.get("reference_style", "program")
        if style == "calls":
            refs = "\n".join(prompts.code_call(d) for d in context["references"]) or "(none yet)"
        else:
            refs = "\n\n".join(prompts.code_reference(d) for d in context["references"]) or "(none yet)"
        return prompts.PROPOSE_PROGRAM.format(purpose=prompts.PROPOSE_PURPOSE[self.name], rules=prompts.CODE_RULES,
                                              heading=prompts.REFERENCE_HEADINGS[style], references=refs)

    def parse_proposal(self, text: str, context: dict) -> dict:
        text = parsing.after_thinking(text)
        program = parsing.program(text)
        inputs = parsing.blocks(text, "input")
        if not inputs:  # the input as a call `f(...)` on literals, in the python block or the prose (the prompt's way)
            args = parsing.call_arguments(text)
            if args is None:
                raise ParseError("no input: no call f(...) on literals, no input block")
        else:
            if inputs[-1].strip().lower() in _PLACEHOLDER_TEXTS:
                raise ParseError("input is the template's placeholder")
            args = parsing.arguments(inputs[-1])
        if not args.strip():
            raise ParseError("empty input (f must take at least one argument)")
        if is_placeholder(args):
            raise ParseError("input is the template's placeholder")
        if has_keywords(args):
            raise ParseError("keyword arguments in the input")
        return {"program": program, "inputs": args}

    def validation_jobs(self, proposal: dict) -> list[Job]:
        """The proposed run (its output becomes the gold answer), then probe runs on inputs of the same shapes."""
        return [Run(proposal["program"], proposal["inputs"])] + \
            [Run(proposal["program"], v, probe=True) for v in probes.variants(proposal["inputs"])]

    def make_entry(self, proposal: dict, results: list[ExecResult], step: int, seed: bool = False) -> Entry:
        res, *probed = results
        if not res.ok:
            raise Invalid(short_reason(res.error))
        reason = None if seed else trivial_output(proposal["inputs"], res.output)  # AZR's seed is the identity
        if reason:
            raise Invalid(reason)
        if not seed:
            answered = [(x, r.output) for x, r in zip(probes.variants(proposal["inputs"]), probed) if r.ok]
            if not answered:
                raise Invalid("trivial: runs on no other input")
            if all(out == res.output for _, out in answered):
                raise Invalid("trivial: output does not depend on the input")
            if probes.projection(proposal["inputs"], res.output, answered) is not None:
                raise Invalid("trivial: returns one of its arguments")
            reason = giveaways.one_step(proposal["program"]) or self.giveaway(res.output, answered)
            if reason:
                raise Invalid(reason)
        key = digest(normalized_program(proposal["program"]), normalized_literals(proposal["inputs"]))
        return Entry(self.name, {**proposal, "output": res.output}, key, step, seed)

    def giveaway(self, output: str, answered: list[tuple[str, str]]) -> str | None:
        """Why the probe runs show the task answers itself (abduction: most inputs give its output), or None."""
        return None

    def novelty_key(self, data: dict) -> str:
        return "program:" + normalized_program(data["program"])

    def resembles(self, proposal: dict, known: list[dict]) -> bool:
        return any(resemblance(proposal["program"], other["program"]) >= RESEMBLES for other in known)

    def _compared_inputs(self, proposal: dict, ref: dict) -> list[str]:
        """The reference's input and probe inputs, the proposal's probe inputs, then the proposal's own input."""
        out = [ref["inputs"], *probes.variants(ref["inputs"])]
        out += [x for x in probes.variants(proposal["inputs"]) if x not in out and x != proposal["inputs"]]
        return [x for x in out if x != proposal["inputs"]] + [proposal["inputs"]]

    def behaviour_jobs(self, proposal: dict, context: dict) -> list[Job]:
        """The proposal and each reference run side by side on the reference's input and probe inputs, and on
        the proposal's own input and probe inputs: a program that returns what a reference returns on most of them (`x * 3 + 0`, a dead
        statement, a renamed helper, one input special-cased) is that reference's copy, whatever its text."""
        jobs = []
        for ref in context.get("references", ()):
            for x in self._compared_inputs(proposal, ref):
                jobs += [Run(proposal["program"], x, runs=1, probe=True), Run(ref["program"], x, runs=1, probe=True)]
        return jobs

    def copies_a_reference(self, proposal: dict, context: dict, results: list[ExecResult]) -> bool:
        """Near-copy: both return the same output on the proposal's own input, and on at least NEAR_COPY of the
        inputs where either returns (two or more; all of them when the agreed outputs take fewer than 3 values)."""
        at = 0
        for ref in context.get("references", ()):
            n = 2 * len(self._compared_inputs(proposal, ref))
            pairs = list(zip(results[at:at + n:2], results[at + 1:at + n:2]))
            at += n
            own = pairs[-1]  # the proposal's own input: its task must be the reference's computation there
            pairs = [(a, b) for a, b in pairs if a.ok or b.ok]
            agreed = [a.output for a, b in pairs if a.ok and b.ok and a.output == b.output]
            # a share of agreement says "the same function" only when the outputs vary: two predicates agree on
            # most inputs by chance, so programs with fewer than three outputs must agree on every input
            share = NEAR_COPY if len(set(agreed)) >= 3 else 1.0
            if own[0].ok and own[1].ok and own[0].output == own[1].output \
                    and len(agreed) >= 2 and len(agreed) >= share * len(pairs):
                return True
        return False

    def seed_proposals(self) -> list[tuple[dict, dict]]:
        return [({"program": IDENTITY, "inputs": "'Hello World'"}, {})]  # AZR's seed triplet


@register
class Deduction(_ProgramInputTask):
    name = "deduction"

    def solve_prompt(self, entry: Entry) -> str:
        return prompts.SOLVE_DEDUCTION.format(program=entry.data["program"], inputs=entry.data["inputs"])

    def parse_answer(self, text: str, entry: Entry) -> str:
        return parsing.literal(self.answer_body(text))

    def check_jobs(self, entry: Entry, answer: str) -> list[Job]:
        return [Equal(answer, entry.data["output"])]

    def judge(self, entry: Entry, answer, results: list[ExecResult]) -> bool:
        return results[0].match is True


@register
class Abduction(_ProgramInputTask):
    name = "abduction"
    checks_proposer_program = True

    def solve_prompt(self, entry: Entry) -> str:
        return prompts.SOLVE_ABDUCTION.format(program=entry.data["program"], output=entry.data["output"])

    def parse_answer(self, text: str, entry: Entry) -> str:
        return parsing.arguments(self.answer_body(text))

    def check_jobs(self, entry: Entry, answer: str) -> list[Job]:
        return [Check(entry.data["program"], answer, entry.data["output"])]

    def judge(self, entry: Entry, answer, results: list[ExecResult]) -> bool:
        return results[0].match is True

    def giveaway(self, output: str, answered: list[tuple[str, str]]) -> str | None:
        if len(answered) >= 5 and sum(out == output for _, out in answered) >= MOST_INPUTS * len(answered):
            return "trivial: most inputs give the output"
        return None

    def _candidates(self, entry: Entry) -> list[str]:
        output = entry.data["output"]
        return [c for c in giveaways.reveal_candidates(entry.data["inputs"], output, entry.data["program"])
                if c != output]

    def followup_jobs(self, entry: Entry) -> list[Job]:
        """f run on its own output (when that returns the output again, a solver answers by copying it), then f
        checked on the inputs a solver can read off the output (giveaways.reveal_candidates)."""
        output, program = entry.data["output"], entry.data["program"]
        own = [Run(program, output, probe=True)] if check_inputs(output) is None else []
        return own + [Check(program, c, output, runs=1) for c in self._candidates(entry)]

    def check_followup(self, entry: Entry, results: list[ExecResult]) -> None:
        own = check_inputs(entry.data["output"]) is None
        if own and results and results[0].ok and results[0].output == entry.data["output"]:
            raise Invalid("trivial: f(output) == output, the output answers itself")
        if any(r.match is True for r in results[int(own):]):
            raise Invalid("trivial: the output gives away an input")


@register
class Induction(Task):
    name = "induction"

    def propose_context(self, buffers, rng: random.Random) -> dict:
        """A program drawn uniformly from the deduction and abduction entries (seeds retired as in the buffers);
        never from the induction buffer, whose programs are themselves drawn from there."""
        pool = [e for name, b in buffers.items() if name in PROGRAM_TASKS for e in b.eligible()]
        return {"program": rng.choice(pool).data["program"] if pool else IDENTITY}

    def propose_prompt(self, context: dict) -> str:
        return prompts.PROPOSE_INDUCTION.format(n=self.settings.get("induction_inputs", 6), program=context["program"])

    def parse_proposal(self, text: str, context: dict) -> dict:
        text = parsing.after_thinking(text)
        inputs, seen = [], set()
        candidates = parsing.blocks(text, "input") + parsing.calls(text)  # input blocks, then calls f(...)
        for block in candidates:
            try:
                args = parsing.arguments(block)
                # [1,2] and [1, 2], 1 and 1.0 and True: one input to a lookup table, not a visible and a hidden
                value = giveaways.args_key(args)
            except ParseError:
                continue
            if value is None:
                continue
            if is_placeholder(args) or has_keywords(args):
                continue
            if value not in seen:
                seen.add(value)
                inputs.append(args)
        need = self.settings.get("induction_inputs", 6)
        if not inputs:
            raise ParseError("no valid input")
        if len(inputs) < need:
            raise ParseError(f"fewer than {need} distinct valid inputs")
        message = parsing.message(text)
        if message is None:
            if self.settings.get("induction_hint", "required") == "required":
                raise ParseError("no hint (a line starting with Hint:, or a message block)")
            message = ""  # the pairs alone; the solver sees `Message: (none)`
        elif message.lower().strip(" .`") in PLACEHOLDER_MESSAGES:  # `Hint: ...` copies the template
            raise ParseError("hint is the template's placeholder")
        elif giveaways.states_program(message, context["program"]):
            raise ParseError("hint quotes the program")
        return {"program": context["program"], "inputs": inputs[:need], "message": message}

    def validation_jobs(self, proposal: dict) -> list[Job]:
        return [Run(proposal["program"], args) for args in proposal["inputs"]]

    def make_entry(self, proposal: dict, results: list[ExecResult], step: int, seed: bool = False) -> Entry:
        if any(r.nondeterministic for r in results):  # the program itself is flawed: no pair of it can be trusted
            raise Invalid("non-deterministic on one of the inputs")
        failed = next((r.error for r in results if not r.ok), None)
        if failed is not None:  # AZR: every input must be valid
            raise Invalid(f"an input failed ({short_reason(failed)})")
        pairs = [[args, r.output] for args, r in zip(proposal["inputs"], results)]  # lists: JSON-stable
        if len({out for _, out in pairs}) == 1:
            raise Invalid("trivial: the same output for every input")
        if all(probes.returns_input(args, out) for args, out in pairs):
            raise Invalid("trivial: returns its input")
        visible = math.ceil(len(pairs) / 2)
        data = {"program": proposal["program"], "message": proposal["message"],
                "visible": pairs[:visible], "hidden": pairs[visible:]}
        if len(data["hidden"]) > 1 and len({out for _, out in data["hidden"]}) == 1:
            raise Invalid("trivial: every hidden input gives one output")
        if giveaways.lookup_answers(data["visible"], data["hidden"]):
            raise Invalid("trivial: a lookup table of the visible pairs answers the hidden ones")
        key = digest(normalized_program(proposal["program"]), *sorted(normalized_literals(a) for a, _ in pairs))
        return Entry(self.name, data, key, step, seed)

    def novelty_key(self, data: dict) -> str:  # the program is given: new means a new set of inputs for it
        return "induction:" + digest(normalized_program(data["program"]),
                                     *sorted(normalized_literals(a) for a, _ in data["visible"] + data["hidden"]))

    def solve_prompt(self, entry: Entry) -> str:
        return prompts.SOLVE_INDUCTION.format(message=entry.data["message"] or "(none)",
                                              pairs=prompts.io_pairs(entry.data["visible"]))

    def parse_answer(self, text: str, entry: Entry) -> str:
        if self.settings.get("answer_format", "think") == "think":
            return parsing.program(self.answer_body(text))
        try:
            body = parsing.answer_text(text)
        except ParseError:
            body = parsing.after_thinking(text)  # a program outside the tags is still a program
        return parsing.program(body)

    def check_jobs(self, entry: Entry, answer: str) -> list[Job]:
        return [Check(answer, args, output) for args, output in entry.data["hidden"]]

    def judge(self, entry: Entry, answer, results: list[ExecResult]) -> bool:
        return bool(results) and all(r.match is True for r in results)

    def followup_jobs(self, entry: Entry) -> list[Job]:
        """Programs copied out of the hint (giveaways.hint_programs), checked on the hidden pairs."""
        hints = giveaways.hint_programs(entry.data["message"], entry.data["program"])
        return [Check(code, args, out, runs=1) for code in hints for args, out in entry.data["hidden"]]

    def check_followup(self, entry: Entry, results: list[ExecResult]) -> None:
        n = len(entry.data["hidden"])
        for i in range(0, len(results), n):
            if n and all(r.match is True for r in results[i:i + n]):
                raise Invalid("trivial: the hint states the program")

    def near_copy(self, data: dict, other: dict) -> bool:
        """Same program, and half or more of the inputs equal (as a lookup table sees them) to the other's."""
        if normalized_program(data["program"]) != normalized_program(other["program"]):
            return False
        mine = {giveaways.args_key(a) for a, _ in data["visible"] + data["hidden"]}
        theirs = {giveaways.args_key(a) for a, _ in other["visible"] + other["hidden"]}
        return len(mine & theirs) * 2 >= len(mine)

    def seed_proposals(self) -> list[tuple[dict, dict]]:
        return []  # an identity induction task is trivial: the buffer is seeded by the model's own proposals
