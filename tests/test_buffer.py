"""Buffers: dedup by normalized AST, oldest-first eviction, uniform sampling, JSONL round trip."""

import random

import pytest

from minazr.selfplay.buffer import Buffers, TaskBuffer
from minazr.selfplay.step import seed_buffers
from minazr.selfplay.tasks import Entry, make_task
from minazr.selfplay.tasks.base import digest, normalized_program


def entry(i: int, task="deduction") -> Entry:
    return Entry(task, {"program": f"def f(x):\n    return x + {i}", "inputs": "1", "output": str(i + 1)},
                 key=f"k{i}", step=i)


def test_normalized_program_ignores_names_comments_and_docstrings():
    a = normalized_program("def f(items):\n    '''doc'''\n    total = 0  # sum\n    for it in items:\n"
                           "        total += it\n    return total")
    b = normalized_program("def f(xs):\n    acc = 0\n    for v in xs:\n        acc += v\n    return acc")
    c = normalized_program("def f(xs):\n    acc = 1\n    for v in xs:\n        acc += v\n    return acc")
    assert a == b != c


def test_duplicates_by_normalized_ast_are_not_added(executor):
    task = make_task("deduction")
    buf = TaskBuffer("deduction", cap=10)
    def make(code, inputs):
        proposal = {"program": code, "inputs": inputs}
        return task.make_entry(proposal, executor.map(task.validation_jobs(proposal), 5.0), step=0)

    assert buf.add(make("def f(a):\n    return a * 2 + 1", "3"))
    assert not buf.add(make("def f(b):\n    # double, add one\n    return b * 2 + 1", "3"))
    assert not buf.add(make("def f(b):\n    return b * 2 + 1", "(3)"))
    assert buf.add(make("def f(b):\n    return b * 2 + 1", "4"))  # same program, other input: another task
    assert len(buf) == 2


def test_cap_evicts_the_oldest():
    buf = TaskBuffer("deduction", cap=3)
    for i in range(5):
        buf.add(entry(i))
    assert [e.key for e in buf.entries()] == ["k2", "k3", "k4"]


def test_sampling_is_uniform_without_replacement():
    buf = TaskBuffer("deduction", cap=100)
    for i in range(10):
        buf.add(entry(i))
    rng = random.Random(0)
    assert len({e.key for e in buf.sample(10, rng)}) == 10
    assert len(buf.sample(50, rng)) == 10
    counts = {e.key: 0 for e in buf.entries()}
    for _ in range(3000):
        for e in buf.sample(2, rng):
            counts[e.key] += 1
    assert min(counts.values()) > 450 and max(counts.values()) < 750  # expected 600 each


def test_round_trip_through_jsonl(tmp_path, executor):
    tasks = {n: make_task(n) for n in ("deduction", "abduction", "induction", "math")}
    buffers = Buffers.empty(tasks, cap=50)
    seed_buffers(buffers, tasks, executor)
    for i in range(3):
        buffers["deduction"].add(entry(i))
    buffers.save(tmp_path)
    again = Buffers.empty(tasks, cap=50)
    again.load(tmp_path)
    for name in tasks:
        assert again[name].entries() == buffers[name].entries()
    assert [e.seed for e in again["deduction"].entries()] == [True, False, False, False]  # the flag survives
    assert len(again["induction"]) == 0  # an identity induction task is trivial: induction has no seed


def test_load_reports_bad_lines(tmp_path):
    (tmp_path / "deduction.jsonl").write_text('{"task": "deduction", "key": "a", "data": {}}\nnot json\n')
    with pytest.raises(ValueError, match="deduction.jsonl:2: not a buffer entry"):
        TaskBuffer("deduction", 10).load(tmp_path / "deduction.jsonl")
    with pytest.raises(FileNotFoundError, match="missing buffer file"):
        Buffers.empty(["math"], 10).load(tmp_path)


def test_wrong_task_is_refused():
    with pytest.raises(ValueError):
        TaskBuffer("math", 10).add(entry(0))
    assert digest("a", "b") != digest("ab")
