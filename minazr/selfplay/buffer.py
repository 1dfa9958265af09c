"""Task buffers: one per task type, holding validated tasks that proposers see as references and solvers solve.

- seeded with AZR's identity program (and a math seed), validated by the executor like any proposal; seed entries
  are retired (no longer shown as references, solved, or given to induction) once the buffer holds
  `retire_seed_after` entries the model proposed;
- grows with every valid proposal; a task already present (same normalized-AST hash) is not added twice;
- capped by evicting the oldest entry (AZR's reference implementation drops the newest instead, which freezes the
  buffer once full);
- references are sampled uniformly without replacement; solver prompts uniformly too, or by a curriculum
  (`draw`): least-drawn first, newest first among equals, and entries the solver has mastered (its last group of
  answers all correct) or given up on (all wrong, twice drawn) only when nothing else is left;
- saved and loaded as JSONL, one file per task type, for checkpoints.
"""

import json
import random
from collections import OrderedDict
from pathlib import Path

from minazr.selfplay.tasks import Entry


class TaskBuffer:
    def __init__(self, task: str, cap: int, retire_seed_after: int = 0):
        if cap < 1:
            raise ValueError("buffer cap must be at least 1")
        self.task = task
        self.cap = cap
        self.retire_seed_after = retire_seed_after  # 0: seeds are never retired
        self._entries: OrderedDict[str, Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def add(self, entry: Entry) -> bool:
        """Add a validated entry; False when an equal task is already there. Evicts the oldest past the cap."""
        if entry.task != self.task:
            raise ValueError(f"a {entry.task} entry does not belong in the {self.task} buffer")
        if entry.key in self._entries:
            return False
        self._entries[entry.key] = entry
        while len(self._entries) > self.cap:
            self._entries.popitem(last=False)
        return True

    def remove(self, key: str) -> bool:
        """Drop an entry found to be flawed after it was added (see selfplay: retracted tasks)."""
        return self._entries.pop(key, None) is not None

    def eligible(self) -> list[Entry]:
        """The entries to show and solve: all of them, less the seeds once enough proposed entries are in."""
        items = list(self._entries.values())
        proposed = sum(not e.seed for e in items)
        if self.retire_seed_after and proposed >= self.retire_seed_after:
            return [e for e in items if not e.seed]
        return items

    def sample(self, k: int, rng: random.Random, exclude: frozenset[str] | set[str] = frozenset()) -> list[Entry]:
        """k eligible entries uniformly at random, without replacement, none whose key is in `exclude` (fewer
        when there are not enough)."""
        items = [e for e in self.eligible() if e.key not in exclude]
        return rng.sample(items, min(k, len(items)))

    def draw(self, k: int, rng: random.Random, exclude: frozenset[str] | set[str] = frozenset()) -> list[Entry]:
        """k eligible entries for the solver by the curriculum (see the module docstring); ties broken at random."""
        items = [e for e in self.eligible() if e.key not in exclude]
        order = {e.key: rng.random() for e in items}
        return sorted(items, key=lambda e: (settled(e), e.stats.get("draws", 0), -e.step, order[e.key]))[:k]

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with tmp.open("w") as fh:
            for e in self._entries.values():
                fh.write(json.dumps({"task": e.task, "key": e.key, "step": e.step, "seed": e.seed, "data": e.data,
                                     "stats": e.stats}) + "\n")
        tmp.replace(path)  # atomic: a crash never leaves a half-written checkpoint

    def load(self, path: str | Path) -> None:
        self._entries.clear()
        with Path(path).open() as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    entry = Entry(row["task"], row["data"], row["key"], int(row.get("step", 0)),
                                  bool(row.get("seed", False)), dict(row.get("stats") or {}))
                except (ValueError, KeyError, TypeError) as e:
                    raise ValueError(f"{path}:{n}: not a buffer entry ({e})") from None
                self.add(entry)


def settled(entry: Entry) -> bool:
    """Has the solver nothing left to learn from this entry for now: its last group of answers all correct, or all
    wrong on a second draw or later? (Such a group is flat: no advantage under a per-prompt baseline.)"""
    last = entry.stats.get("last_rate")
    return last == 1.0 or (last == 0.0 and entry.stats.get("draws", 0) >= 2)


def record_group(entry: Entry, correct: list[bool]) -> None:
    """Count one group of solver answers to `entry` (its Monte-Carlo solves or a solver prompt's answers)."""
    if not correct:
        return
    s = entry.stats
    s["draws"] = s.get("draws", 0) + 1
    s["answers"] = s.get("answers", 0) + len(correct)
    s["correct"] = s.get("correct", 0) + sum(correct)
    s["last_rate"] = sum(correct) / len(correct)


class Buffers(dict):
    """task name -> TaskBuffer."""

    @classmethod
    def empty(cls, tasks, cap: int, retire_seed_after: int = 0) -> "Buffers":
        return cls({t: TaskBuffer(t, cap, retire_seed_after) for t in tasks})

    def sizes(self) -> dict[str, int]:
        return {name: len(b) for name, b in self.items()}

    def save(self, directory: str | Path) -> None:
        for name, b in self.items():
            b.save(Path(directory) / f"{name}.jsonl")

    def load(self, directory: str | Path) -> None:
        for name, b in self.items():
            path = Path(directory) / f"{name}.jsonl"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing buffer file")
            b.load(path)
