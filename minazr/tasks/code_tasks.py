"""AZR's three code tasks over Python programs `f`.

- deduction: propose (program, input); the executor computes the output; solve: predict the output, correct when
  it equals the gold output by value (both are literals, compared by the executor without running anything).
- abduction: propose (program, input); the executor computes the output; solve: give any input x, correct when
  f(x) == gold output by value (f runs in the sandbox, twice; the comparison happens outside it).
- induction: given a program from the code buffers, propose N inputs and a message; the executor computes the
  outputs; solve: from the message and the visible half of the pairs write a program that passes the hidden half.
"""

import math
import random

from minazr import parsing, prompts
from minazr.executor import Check, Equal, ExecResult, Job, Run
from minazr.parsing import ParseError
from minazr.tasks import register
from minazr.tasks.base import Entry, Invalid, Task, digest, normalized_literals, normalized_program, short_reason

IDENTITY = "def f(a):\n    return a"
CODE_TASKS = ("deduction", "abduction", "induction")


class _ProgramInputTask(Task):
    """Shared by deduction and abduction: both propose a program with one input, conditioned on K references."""

    def propose_context(self, buffers, rng: random.Random) -> dict:
        refs = buffers[self.name].sample(self.settings.get("k_references", 6), rng)
        return {"references": [e.data for e in refs]}

    def propose_prompt(self, context: dict) -> str:
        refs = "\n\n".join(prompts.code_reference(d) for d in context["references"]) or "(none yet)"
        return prompts.PROPOSE_PROGRAM.format(purpose=prompts.PROPOSE_PURPOSE[self.name], rules=prompts.CODE_RULES,
                                              references=refs)

    def parse_proposal(self, text: str, context: dict) -> dict:
        text = parsing.after_thinking(text)
        program = parsing.program(text)
        inputs = parsing.blocks(text, "input")
        if not inputs:  # an input given as a demo call (`assert f(x) == y`) counts; nothing else does
            args = parsing.call_arguments(text)
            if args is None:
                raise ParseError("no input block")
            return {"program": program, "inputs": args}
        args = parsing.arguments(inputs[-1])
        if not args.strip():
            raise ParseError("empty input (f must take at least one argument)")
        return {"program": program, "inputs": args}

    def validation_jobs(self, proposal: dict) -> list[Job]:
        return [Run(proposal["program"], proposal["inputs"])]

    def make_entry(self, proposal: dict, results: list[ExecResult], step: int) -> Entry:
        (res,) = results
        if not res.ok:
            raise Invalid(short_reason(res.error))
        key = digest(normalized_program(proposal["program"]), normalized_literals(proposal["inputs"]))
        return Entry(self.name, {**proposal, "output": res.output}, key, step)

    def seed_proposals(self) -> list[tuple[dict, dict]]:
        return [({"program": IDENTITY, "inputs": "'Hello World'"}, {})]  # AZR's seed triplet


@register
class Deduction(_ProgramInputTask):
    name = "deduction"

    def solve_prompt(self, entry: Entry) -> str:
        return prompts.SOLVE_DEDUCTION.format(program=entry.data["program"], inputs=entry.data["inputs"])

    def parse_answer(self, text: str, entry: Entry) -> str:
        return parsing.literal(parsing.answer_text(text))

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
        return parsing.arguments(parsing.answer_text(text))

    def check_jobs(self, entry: Entry, answer: str) -> list[Job]:
        return [Check(entry.data["program"], answer, entry.data["output"])]

    def judge(self, entry: Entry, answer, results: list[ExecResult]) -> bool:
        return results[0].match is True


@register
class Induction(Task):
    name = "induction"

    def propose_context(self, buffers, rng: random.Random) -> dict:
        pool = [b for name, b in buffers.items() if name in CODE_TASKS and len(b)]
        entry = rng.choice(pool).sample(1, rng)[0] if pool else None
        return {"program": entry.data["program"] if entry else IDENTITY}

    def propose_prompt(self, context: dict) -> str:
        return prompts.PROPOSE_INDUCTION.format(n=self.settings.get("induction_inputs", 6), program=context["program"])

    def parse_proposal(self, text: str, context: dict) -> dict:
        text = parsing.after_thinking(text)
        inputs, seen = [], set()
        for block in parsing.blocks(text, "input"):
            try:
                args = parsing.arguments(block)
                value = normalized_literals(args)  # [1,2] and [1, 2] are one input, not a visible and a hidden
            except (ParseError, Invalid):
                continue
            if value not in seen:
                seen.add(value)
                inputs.append(args)
        if not inputs:
            raise ParseError("no valid input block")
        messages = parsing.blocks(text, "message")
        if not messages or not messages[-1].strip():
            raise ParseError("no message block")
        limit = self.settings.get("induction_inputs", 6)
        return {"program": context["program"], "inputs": inputs[:limit], "message": messages[-1].strip()}

    def validation_jobs(self, proposal: dict) -> list[Job]:
        return [Run(proposal["program"], args) for args in proposal["inputs"]]

    def make_entry(self, proposal: dict, results: list[ExecResult], step: int) -> Entry:
        if any(r.nondeterministic for r in results):  # the program itself is flawed: no pair of it can be trusted
            raise Invalid("non-deterministic on one of the inputs")
        pairs = [[args, r.output] for args, r in zip(proposal["inputs"], results) if r.ok]  # lists: JSON-stable
        need = self.settings.get("induction_min_pairs", 2)
        if len(pairs) < need:
            failed = next((r.error for r in results if not r.ok), None)
            raise Invalid(f"fewer than {need} valid inputs" + (f" ({short_reason(failed)})" if failed else ""))
        visible = math.ceil(len(pairs) / 2)
        data = {"program": proposal["program"], "message": proposal["message"],
                "visible": pairs[:visible], "hidden": pairs[visible:]}
        key = digest(normalized_program(proposal["program"]), *sorted(normalized_literals(a) for a, _ in pairs))
        return Entry(self.name, data, key, step)

    def solve_prompt(self, entry: Entry) -> str:
        return prompts.SOLVE_INDUCTION.format(message=entry.data["message"],
                                              pairs=prompts.io_pairs(entry.data["visible"]))

    def parse_answer(self, text: str, entry: Entry) -> str:
        try:
            body = parsing.answer_text(text)
        except ParseError:
            body = parsing.after_thinking(text)  # a program outside the tags is still a program
        return parsing.program(body)

    def check_jobs(self, entry: Entry, answer: str) -> list[Job]:
        return [Check(answer, args, output) for args, output in entry.data["hidden"]]

    def judge(self, entry: Entry, answer, results: list[ExecResult]) -> bool:
        return bool(results) and all(r.match is True for r in results)

    def seed_proposals(self) -> list[tuple[dict, dict]]:
        inputs = ["'Hello World'", "[1, 2, 3]", "{'a': 1}", "42"]
        return [({"program": IDENTITY, "inputs": inputs, "message": "The function returns its argument unchanged."},
                 {})]
