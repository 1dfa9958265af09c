"""Task types, found through one registry: `TASKS["deduction"]` etc. Add a task by registering its class."""

from minazr.selfplay.tasks.base import Entry, Invalid, Task

TASKS: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    TASKS[cls.name] = cls
    return cls


def make_task(name: str, **settings) -> Task:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r} (known: {', '.join(sorted(TASKS))})")
    return TASKS[name](name=name, settings=settings)


def tasks_from_config(cfg) -> dict[str, Task]:
    """The tasks a SelfPlayConfig plays, with its settings."""
    return {n: make_task(n, k_references=cfg.k_references, reference_style=cfg.reference_style,
                         induction_inputs=cfg.induction_inputs, induction_hint=cfg.induction_hint,
                         answer_format=cfg.answer_format,
                         think_opened=cfg.prompt_template == "r1" or cfg.open_think)
            for n in cfg.tasks}


from minazr.selfplay.tasks import code_tasks, math_task  # noqa: E402,F401  (registers the built-in tasks)

__all__ = ["TASKS", "Entry", "Invalid", "Task", "make_task", "register", "tasks_from_config"]
