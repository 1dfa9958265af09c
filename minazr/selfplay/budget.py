"""Does a task fit the engine's context wherever self-play shows it? A short program can have an output of
thousands of characters (`list(range(x))` on a large x); every prompt that shows it would then be refused.

A task fits when, counted in the engine's tokens (or in UTF-8 bytes without a tokenizer: never fewer than the
tokens of a byte-level BPE), each of these leaves room for its generation in `rollout.max_model_len`:
  - its solver prompt (as rendered, worked example included) plus `solve_max_tokens`;
  - deduction, abduction, math: a proposer prompt showing it as each of its `k_references` references, plus
    `max_tokens` (so that any k references of the buffer fit together);
  - deduction, abduction with induction played: the induction proposer prompt for its program, plus `max_tokens`.
A proposal that does not fit is invalid ("too long: ..."); buffer entries that no longer fit (a smaller context
on --resume) are dropped when the buffer is loaded, and counted.
"""

from dataclasses import dataclass, field


def utf8_bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


@dataclass
class PromptBudget:
    max_model_len: int
    propose_tokens: int
    solve_tokens: int
    k_references: int
    render: object  # a Renderer (or a callable: instruction -> prompt text)
    tasks: dict  # task name -> Task
    count: object = utf8_bytes  # text -> tokens
    _empty: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_config(cls, cfg, render, tasks, tokenizer=None) -> "PromptBudget":
        """The budget of a RunConfig, counted with the engine's tokenizer when there is one."""
        count = utf8_bytes
        if tokenizer is not None:
            def count(text: str) -> int:
                return len(tokenizer(text, add_special_tokens=True)["input_ids"])
        sp = cfg.selfplay
        return cls(cfg.rollout.max_model_len, sp.max_tokens, sp.solve_max_tokens or sp.max_tokens, sp.k_references,
                   render, tasks, count)

    def reason(self, task, entry) -> str | None:
        """Why `entry` of `task` does not fit (a reason starting with 'too long:'), or None."""
        solve = getattr(self.render, "solve", None)
        prompt = solve(task, entry) if solve else self.render(task.solve_prompt(entry))
        need = self.count(prompt) + self.solve_tokens
        if need > self.max_model_len:
            return f"too long: the solver prompt needs {need} tokens (max_model_len {self.max_model_len})"
        if "references" in _context_keys(task):
            empty = self._empty.get(task.name)
            if empty is None:
                empty = self._empty[task.name] = self.count(self.render(task.propose_prompt({"references": []})))
            one = self.count(self.render(task.propose_prompt({"references": [entry.data]}))) - empty
            need = empty + max(1, self.k_references) * one + self.propose_tokens
            if need > self.max_model_len:
                return (f"too long: {self.k_references} references like it need {need} tokens "
                        f"(max_model_len {self.max_model_len})")
        induction = self.tasks.get("induction")
        if induction is not None and task.name in ("deduction", "abduction"):
            need = self.count(self.render(induction.propose_prompt({"program": entry.data["program"]}))) \
                + self.propose_tokens
            if need > self.max_model_len:
                return f"too long: its induction prompt needs {need} tokens (max_model_len {self.max_model_len})"
        return None

    def drop_misfits(self, buffers) -> dict[str, int]:
        """Remove the entries that do not fit from every buffer; returns how many per task (only non-zero)."""
        dropped = {}
        for name, buffer in buffers.items():
            task = self.tasks.get(name)
            if task is None:
                continue
            gone = [e.key for e in buffer.entries() if self.reason(task, e)]
            for key in gone:
                buffer.remove(key)
            if gone:
                dropped[name] = len(gone)
        return dropped


def _context_keys(task) -> set[str]:
    """The keys of a task's proposer context: 'references' for the tasks that show buffer entries."""
    return {"references"} if task.name in ("deduction", "abduction", "math") else set()
