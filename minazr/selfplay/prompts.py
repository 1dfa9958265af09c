"""Every prompt minAZR shows the model in training, in one place, and the two ways of wrapping them.

Instructions follow Absolute Zero's (Zhao et al., 2025, appendix) in shortened form: small models follow short,
concrete formats better. Two templates:
- "r1": the raw R1-style text AZR uses for base models; the completion starts inside <think>.
- "chat": system + user messages rendered by the tokenizer's chat template (instruct models).
Solver prompts ask for reasoning in <think> </think> before the <answer> (the strict format the solver reward
checks) and show placeholders (OUTPUT, INPUT, NUMBER), never an example that could pass as an answer: small
models copy examples. PLACEHOLDER_INPUTS lists the texts a proposer may copy from these templates as an input
(today's and earlier versions'); a proposal that does is rejected. The evaluation's standard prompts are apart, in
minazr/eval/harness.py.
"""

from dataclasses import dataclass

SYSTEM = ("You are a helpful assistant. First think about the reasoning process, then give the answer. Put the "
          "reasoning in <think> </think> tags and the final answer in <answer> </answer> tags, i.e. "
          "<think> reasoning here </think> <answer> answer here </answer>.")

R1_TEMPLATE = ("A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
               "The assistant first thinks about the reasoning process in the mind and then provides the user with "
               "the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> "
               "</answer> tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here "
               "</answer>. User: {instruction}\nAssistant: <think>")

CODE_RULES = """Rules for `f`:
- it takes at least one argument and returns a value computed from it (not None, not the argument itself);
- it is deterministic: no randomness, date/time, files, network, input() or printing;
- it imports only these modules, if any: math, collections, itertools, functools, operator, string, re, heapq,
  bisect, copy, fractions, decimal, typing, dataclasses, json, textwrap; it finishes within a few seconds."""

PROPOSE_PROGRAM = """## Task: create a new Python program `f` and one input for it{purpose}.

{rules}

Think first inside <think> </think>. Then write one python block: the function, then one call of it on your input,
with the arguments written as Python literals (numbers, strings, lists, dicts, ...):
```python
def f(...):
    ...

f(...)
```

### {heading}
{references}"""

REFERENCE_HEADINGS = {
    "program": "Functions that already exist (write one that works differently and is harder)",
    "calls": "Functions that already exist, each shown by one call and what it returns (write one that works "
             "differently and is harder)",
}

PROPOSE_PURPOSE = {
    "deduction": ". Another model will be shown the function and the input and must predict the output, so working "
                 "out the output should take careful multi-step reasoning",
    "abduction": ". Another model will be shown the function and the output and must find an input that produces "
                 "it, so working backwards from the output should take careful reasoning",
}

PROPOSE_INDUCTION = """## Task: write {n} inputs for the function below, and a hint
```python
{program}
```
Another model will see half of your inputs with the outputs `f` returns on them, plus your hint, and must write
`f` itself. Choose inputs that differ from each other and together show what `f` does.

Think first inside <think> </think>. Then write one python block with {n} calls of `f`, one per line, each on
different arguments written as Python literals, and after the block one line that starts with `Hint:`:
```python
f(...)
f(...)
```
Hint: ..."""

PROPOSE_MATH = """## Task: create a new math word problem and a Python function that computes its answer
Write a word problem with one numeric answer that takes several steps to work out, then a function `f()` without
arguments that computes that answer and returns it as an int or float. The function is run to obtain the answer;
your own answer is never used.

Think first inside <think> </think>. Then write the problem on one line after `Problem:`, then the function in a
python block:
Problem: ...
```python
def f():
    ...
    return answer
```

### Problems that already exist (write a different one that takes more steps)
{references}"""

SOLVE_DEDUCTION = """## Task: predict the output of the program for the given input
```python
{program}
```
```input
{inputs}
```
Think step by step: execute the program by hand inside <think>, and close the reasoning with </think>. Then give
the exact return value of `f` as a Python literal inside <answer> </answer>. The shape of your reply:
<think>
(the steps, one per line)
</think>
<answer> OUTPUT </answer>"""

SOLVE_ABDUCTION = """## Task: find an input for which the program returns the given output
```python
{program}
```
```output
{output}
```
Think step by step inside <think>: work backwards from the output, and close the reasoning with </think>. Then
give the argument list of one call to `f`, as Python literals, inside <answer> </answer>. The shape of your reply:
<think>
(the steps, one per line)
</think>
<answer> INPUT </answer>"""

SOLVE_INDUCTION = """## Task: write the program `f` that maps these inputs to these outputs
Message: {message}

{pairs}

Think step by step inside <think> about what rule maps every input to its output, and close the reasoning with
</think>. Then write a Python function named `f` that returns the output for each input, inside <answer> </answer>.
The shape of your reply:
<think>
(the steps, one per line)
</think>
<answer>
```python
def f(...):
    ...
```
</answer>"""

SOLVE_MATH = """## Task: solve the math problem
{problem}

Think step by step inside <think>, and close the reasoning with </think>. Then give the final numeric answer inside
<answer> </answer>. The shape of your reply:
<think>
(the steps, one per line)
</think>
<answer> NUMBER </answer>"""


# Inputs a proposer can copy from a template instead of writing one: the proposer templates' placeholders, and the
# examples earlier versions of these prompts carried (the first 0.5B run copied them into 32 solver prompts).
PLACEHOLDER_INPUTS = ("the argument list of one call to f, as Python literals", "arg1, arg2", "INPUT", "OUTPUT",
                      "[3, 1, 2], 'abc'", "'abc', 3", "[1, 2]", "...", "ARGUMENTS")
# Hints an induction proposer can copy from a template (today's and earlier versions'); a proposal that does is rejected.
PLACEHOLDER_MESSAGES = ("...", "one or two sentences of hint", "HINT", "your hint", "a short hint")
# Problems a math proposer can copy from its template (today's and earlier versions').
PLACEHOLDER_PROBLEMS = ("...", "the word problem")


# One worked exchange per task type, shown before the solver prompt as an earlier turn of the conversation when
# `selfplay.format_example` is on: a task of the same kind, and a reply in the exact format the solver reward
# checks. SmolLM2-135M wrote 0 of 96 well-formed answers from the instructions alone (seed tasks, 32 samples each)
# and 23 of 96 after one such exchange (docs/selfplay.md). The example is another
# task, so copying its answer is simply a wrong answer; its reply is short, so the reasoning budget is not spent on
# it. (A proposer could farm a copier by proposing a task whose answer is the example's: a known gap,
# docs/selfplay.md.)
FORMAT_EXAMPLES = {
    "deduction": (SOLVE_DEDUCTION.format(program="def f(x):\n    return x * 2", inputs="21"),
                  "<think>\nf doubles x. x = 21, so f returns 21 * 2 = 42.\n</think>\n<answer> 42 </answer>"),
    "abduction": (SOLVE_ABDUCTION.format(program="def f(x):\n    return x + 1", output="10"),
                  "<think>\nf adds 1 to x. x + 1 = 10, so x = 9.\n</think>\n<answer> 9 </answer>"),
    "induction": (SOLVE_INDUCTION.format(message="f doubles its argument.",
                                         pairs="Input: f(3)\nOutput: 6\nInput: f(10)\nOutput: 20"),
                  "<think>\nEach output is twice its input: 3 * 2 = 6, 10 * 2 = 20.\n</think>\n<answer>\n```python\n"
                  "def f(x):\n    return x * 2\n```\n</answer>"),
    "math": (SOLVE_MATH.format(problem="Ann has 2 bags with 3 apples in each. How many apples does she have?"),
             "<think>\n2 bags of 3 apples is 2 * 3 = 6 apples.\n</think>\n<answer> 6 </answer>"),
}


def code_reference(entry_data: dict) -> str:
    """A buffer entry as the proposer prompt shows it: the function, then its call, with the output as a comment."""
    return f"```python\n{entry_data['program']}\n\nf({entry_data['inputs']})  # returns {entry_data['output']}\n```"


def code_call(entry_data: dict) -> str:
    """A buffer entry shown without its code (selfplay.reference_style: calls): only what it does on its input."""
    return f"- f({entry_data['inputs']}) returns {entry_data['output']}"


def math_reference(entry_data: dict) -> str:
    return f"Problem: {entry_data['problem']}\nAnswer: {entry_data['answer']}"


def io_pairs(pairs: list[tuple[str, str]]) -> str:
    return "\n".join(f"Input: f({i})\nOutput: {o}" for i, o in pairs)


@dataclass(frozen=True)
class Renderer:
    """Wraps an instruction into the text the engine sees: R1 raw text, or the tokenizer's chat template."""

    template: str = "r1"  # "r1" or "chat"
    tokenizer: object = None  # anything with apply_chat_template (transformers tokenizers), for "chat"
    open_think: bool = False  # chat: the assistant's turn starts inside <think>, as the r1 template's does
    format_example: bool = False  # solver prompts: FORMAT_EXAMPLES' exchange for the task type goes first

    @classmethod
    def from_config(cls, cfg, tokenizer) -> "Renderer":
        """The renderer a SelfPlayConfig asks for."""
        return cls(cfg.prompt_template, tokenizer, cfg.open_think, cfg.format_example)

    def solve(self, task, entry) -> str:
        """The solver prompt of `entry`, after the task type's worked example when format_example is on."""
        example = FORMAT_EXAMPLES.get(task.name) if self.format_example else None
        return self(task.solve_prompt(entry), example)

    @property
    def think_opened(self) -> bool:
        """Does the rendered prompt end inside <think> (the completion starts with the reasoning)?"""
        return self.template == "r1" or self.open_think

    def __call__(self, instruction: str, example: tuple[str, str] | None = None) -> str:
        """`example`: an (instruction, reply) exchange shown as an earlier turn."""
        if self.template == "r1":
            if example:  # the earlier exchange in the same raw form; the reply already holds its <think>
                shown, reply = example
                reply = reply.removeprefix("<think>")
                return R1_TEMPLATE.format(instruction=f"{shown}\nAssistant: <think>{reply}\nUser: {instruction}")
            return R1_TEMPLATE.format(instruction=instruction)
        if self.template == "chat":
            if self.tokenizer is None or not hasattr(self.tokenizer, "apply_chat_template"):
                raise ValueError("the chat template needs a tokenizer with apply_chat_template")
            shot = [{"role": "user", "content": example[0]}, {"role": "assistant", "content": example[1]}] \
                if example else []
            messages = [{"role": "system", "content": SYSTEM}, *shot, {"role": "user", "content": instruction}]
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return text + "<think>\n" if self.open_think else text
        raise ValueError(f"unknown prompt template {self.template!r} (expected 'r1' or 'chat')")

    def plain(self, instruction: str) -> str:
        """The instruction as the only user message of the chat template, without our system prompt (the
        standard evaluation prompts); r1 models get the instruction as raw text."""
        if self.template != "chat":
            return instruction
        if self.tokenizer is None or not hasattr(self.tokenizer, "apply_chat_template"):
            raise ValueError("the chat template needs a tokenizer with apply_chat_template")
        return self.tokenizer.apply_chat_template([{"role": "user", "content": instruction}], tokenize=False,
                                                  add_generation_prompt=True)
