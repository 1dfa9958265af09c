"""Standard evaluation prompts, kept apart from the training prompts (minazr/selfplay/prompts.py).

CRUXEval follows the format of its paper's harness (Gu et al., 2024, facebookresearch/cruxeval `prompts.py`):
raw text, few-shot `[PYTHON] ... [/PYTHON]` examples, an assertion with `??` in place of the unknown, and the model
completes `[ANSWER] assert ... [/ANSWER]`; the chain-of-thought variant reasons inside `[THOUGHT] ... [/THOUGHT]`
first. The format is the harness's; the wording and the two examples per prompt are written here. Every model sees
the raw text (no chat template), as in the harness, and generation stops at `[/ANSWER]`.

GSM8K is zero-shot chain of thought (Kojima et al., 2022): the question, then "Let's think step by step", asking
for a last line "The answer is N". Instruct models (`prompt_template: chat`) get it as one user message through
their own chat template, with no system prompt of ours; base models (`r1`) get `Question: ...\\nAnswer: Let's
think step by step.` as raw text, stopped at the next "Question:". The final answer is the first number after the
last "The answer is" (or `\\boxed{}`, `####`); failing those, the last number in the completion
(benchmarks.final_number).

Pure: no Ray, no vLLM.
"""

import ast
import re

from minazr.selfplay import parsing

STOP_CRUX = ("[/ANSWER]",)
STOP_GSM8K_RAW = ("\nQuestion:", "\n\nQuestion")

_OUTPUT_INTRO = ("Each block below shows a Python function and an assertion whose right-hand side is unknown (??). "
                 "Replace ?? with the exact value the function returns for that input, written as a Python literal "
                 "(no expressions, no function calls), even if the function looks wrong. Write the completed "
                 "assertion between [ANSWER] and [/ANSWER], as in the examples.")
_INPUT_INTRO = ("Each block below shows a Python function and an assertion whose input is unknown (??). Replace ?? "
                "with an input, written as Python literals, for which the function returns the value on the "
                "right-hand side; if several inputs work, give any one. Write the completed assertion between "
                "[ANSWER] and [/ANSWER], as in the examples.")
_COT = (" First reason step by step between [THOUGHT] and [/THOUGHT], executing the function by hand; then give "
        "the answer.")

# (program, input, output, a short trace for the chain-of-thought variant): written for this project
_EXAMPLES = [
    ("def f(nums):\n    return [n * 2 for n in nums if n > 0]", "[3, -1, 4]", "[6, 8]",
     "The function keeps the positive numbers 3 and 4 and doubles them, giving [6, 8]."),
    ("def f(text, k):\n    return text[k:] + text[:k]", "'rotate', 2", "'tatero'",
     "text[2:] is 'tate' and text[:2] is 'ro'; joined they give 'tatero'."),
]


def _block(program: str, call_in: str, call_out: str) -> str:
    return f"[PYTHON]\n{program}\nassert f({call_in}) == {call_out}\n[/PYTHON]\n"


def cruxeval_prompt(program: str, inputs: str, output: str, predict: str, cot: bool) -> str:
    """The few-shot harness prompt for output prediction (`predict="output"`) or input prediction ("input")."""
    intro = (_OUTPUT_INTRO if predict == "output" else _INPUT_INTRO) + (_COT if cot else "")
    shots = []
    for prog, x, y, trace in _EXAMPLES:
        shot = _block(prog, x, "??") if predict == "output" else _block(prog, "??", y)
        if cot:
            shot += f"[THOUGHT]\n{trace}\n[/THOUGHT]\n"
        shots.append(shot + f"[ANSWER]\nassert f({x}) == {y}\n[/ANSWER]\n")
    query = _block(program, inputs, "??") if predict == "output" else _block(program, "??", output)
    return intro + "\n\n" + "\n".join(shots) + "\n" + query + ("[THOUGHT]\n" if cot else "[ANSWER]\n")


def answer_section(completion: str) -> tuple[str, bool]:
    """The text after the last [ANSWER] (the prompt opens it for direct prompts), without [/ANSWER];
    and whether the harness format was followed (an [ANSWER] tag after [THOUGHT] ... [/THOUGHT], or none needed)."""
    text = completion
    at = text.rfind("[ANSWER]")
    opened = at >= 0
    if opened:
        text = text[at + len("[ANSWER]"):]
    end = text.find("[/ANSWER]")
    return (text[:end] if end >= 0 else text).strip(), opened


def assertion(text: str) -> tuple[str, str] | None:
    """(arguments source, right-hand side source) of the first line reading `assert f(...) == ...`, or None."""
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("assert"):
            continue
        try:
            node = ast.parse(line).body[0]
        except (SyntaxError, ValueError, RecursionError, MemoryError, IndexError):
            continue
        test = getattr(node, "test", None)
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq) \
                and isinstance(test.left, ast.Call) and isinstance(test.left.func, ast.Name) \
                and test.left.func.id == "f" and not test.left.keywords:
            args = ", ".join(ast.get_source_segment(line, a) or "" for a in test.left.args)
            return args, ast.get_source_segment(line, test.comparators[0]) or ""
    return None


def extract(completion: str, cot: bool, predict: str) -> tuple[str, bool]:
    """The predicted output literal (`predict="output"`) or argument list ("input"); strict when it came as the
    harness's assertion `assert f(X) == Y` inside the answer section. An assertion whose part is not literal is an
    answer, a wrong one: it is not read another way."""
    read, part = (parsing.literal, 1) if predict == "output" else (parsing.arguments, 0)
    section, opened = answer_section(completion)
    found = assertion(section)
    if found is not None:
        return read(found[part]), opened or not cot
    return read(section), False


def extract_output(completion: str, cot: bool) -> tuple[str, bool]:
    return extract(completion, cot, "output")


def extract_input(completion: str, cot: bool) -> tuple[str, bool]:
    return extract(completion, cot, "input")


def gsm8k_instruction(question: str) -> str:
    """The user message for instruct models."""
    return (f"{question.strip()}\n\nLet's think step by step. At the end, write the final answer on its own line "
            f"as \"The answer is N\", where N is a number.")


def gsm8k_raw(question: str) -> str:
    """The raw text for base models."""
    return f"Question: {question.strip()}\nAnswer: Let's think step by step."


ANSWER_IS = re.compile(r"the answer is|\\boxed\{|####", re.IGNORECASE)
