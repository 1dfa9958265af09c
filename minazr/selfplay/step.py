"""One step of Absolute Zero self-play, as a plain function over a Policy, the buffers and the executor.

    result = selfplay_step(policy, buffers, tasks, executor, cfg, scheme, render, rng, step)

Requests stream through the policy (minazr/contracts/stream.py): each is handled as soon as it finishes, while the engines
go on decoding the rest. For every task type in the config:
  1. propose   proposer prompts (K references from the buffer, or a program for induction), sent at once together
               with the solver prompts drawn from the buffers (they do not depend on this step's proposals).
  2. validate  each finished proposal is parsed and run in the sandbox (twice, in separate processes); the
               executor, never the model, supplies gold answers. Trivial tasks are invalid (tasks/code_tasks.py); a
               copy (its novelty key equals a reference's, any buffer entry's or an earlier proposal's) gets the
               duplicate penalty and no learnability. Valid, new proposals enter their buffer, and their
               Monte-Carlo solves (n_mc each; the solve rate is the proposer's learnability, and with `train_on_mc`
               they are solver samples too) go out at once.
  3. solve     solver prompts (n_solve each, trained on) from the buffers, never this step's new tasks; with
               `fresh_solves` and not `train_on_mc`, this step's new tasks first, and then (the one barrier the
               algorithm needs) they go out once every proposal is validated.
  4. judge     every finished answer is parsed and checked (in the sandbox when model code or literals are
               involved), while the engines decode the rest.
  5. rewards   solver: correct / wrong / unparseable; proposer: learnability 1 - solve rate, or invalid.
  6. advantages over all trainable samples, and per-token loss weights.
Request i of a step samples with the step's seed + i and samples are ordered by request, so a step's result does
not depend on when each request finishes. With `selfplay.streaming: false` (or a Policy that cannot stream) every
round generates all requests queued so far in one call: proposals and buffer solves, then Monte-Carlo solves.
Returns the scored samples (token ids, behaviour log-probs, policy version, reward, advantage) and step metrics.
A batch where every proposal is invalid, or every answer unparseable, is a normal step, and so is any exception
raised while parsing, validating or judging one completion: it is that sample's failure, recorded with its reason
(`_per_sample`), never the step's. Samples the sandbox failed on (ExecResult.infra) are dropped, not scored. An
abduction task whose program answers a solver's input with two different outputs is retracted: the proposal
counts as invalid, the task leaves the buffer, and answers to it are not trained on.
"""

import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field, replace

from minazr.selfplay.advantages import ESTIMATORS, RunningBaseline, token_weights
from minazr.selfplay.buffer import Buffers, record_group
from minazr.sandbox.executor import ExecResult, Executor, Job, Run
from minazr.sandbox.literals import input_order_depends_on_seed
from minazr.selfplay.parsing import ParseError, has_reasoning, reasoning_chars
from minazr.contracts.policy import PROMPT_TOO_LONG, GenRequest, Generation, Policy, Sampling, ScoredSample
from minazr.selfplay.rewards import RewardScheme, proposer_reward, solver_reward
from minazr.contracts.stream import Stream, open_stream
from minazr.selfplay.tasks import Entry, Invalid, Task

log = logging.getLogger(__name__)
_LOGGED: set = set()  # warnings given once per process: (where, exception type) pairs, "reused seeds"


@dataclass
class StepResult:
    samples: list[ScoredSample]  # trainable: proposer samples and solver samples
    metrics: dict[str, float]
    new_entries: list[Entry] = field(default_factory=list)
    requests: list[tuple[GenRequest, Sampling]] = field(default_factory=list)  # every request sent, in order


@dataclass
class _Proposal:
    task: Task
    context: dict
    sample: ScoredSample
    fields: dict | None = None
    entry: Entry | None = None
    reason: str | None = None  # why it is invalid
    solve_rate: float | None = None
    infra: bool = False  # the sandbox failed, not the model: not trained on
    unstable: bool = False  # some Monte-Carlo answer got no verdict: no learnability reward
    duplicate: bool = False  # a valid task that is a copy: duplicate penalty, kept out of the buffer
    verbatim: bool = False  # ... the same program (normalised) as a reference its own prompt showed


@dataclass
class _Solve:
    task: Task
    entry: Entry
    sample: ScoredSample
    answer: object = None
    reason: str | None = None  # why it is unparseable
    correct: bool = False
    infra: bool = False  # the sandbox failed, not the model: not trained on
    no_verdict: bool = False  # the proposer's program gave two outputs for this answer: neither trained on nor counted
    flawed_task: bool = False  # ... and not because of the answer: the task is retracted


class _Ids:
    """Hands out prompt ids, so samples of one prompt share one (GRPO groups)."""

    def __init__(self):
        self.next = 0

    def __call__(self) -> int:
        self.next += 1
        return self.next - 1


def selfplay_step(policy: Policy, buffers: Buffers, tasks: dict[str, Task], executor: Executor, cfg,
                  scheme: RewardScheme, render, rng: random.Random, step: int, timeout_s: float = 5.0,
                  estimator: str = "trr++", weighting: str = "token", on_phase=None, confirm_runs: int = 2,
                  stream: Stream | None = None, limits: "Limits | None" = None, fits=None,
                  baseline: RunningBaseline | None = None) -> StepResult:
    sampling = Sampling(cfg.temperature, cfg.top_p, cfg.max_tokens)
    solve_sampling = replace(sampling, max_tokens=cfg.solve_max_tokens or cfg.max_tokens)
    (on_phase or (lambda name: None))("rollout")
    t_start = time.perf_counter()
    roll = _Rollout(stream or open_stream(policy, cfg.stream_steps, cfg.streaming), rng.randrange(2**31))
    timings: Counter = Counter()
    try:
        # requests that do not depend on this step's proposals go out together
        for task in tasks.values():
            for _ in range(cfg.propose_per_task):
                ctx = task.propose_context(buffers, rng)
                roll.add("propose", task, ctx, render(task.propose_prompt(ctx)), cfg.n_propose, sampling)
        deferred = cfg.fresh_solves and not cfg.train_on_mc  # solver prompts wait for this step's new tasks
        if not deferred:
            for task, entry in solver_entries(buffers, tasks, cfg, rng, []):
                roll.add("solve", task, entry, _solve_text(render, task, entry), cfg.n_solve, solve_sampling)
        proposals, mc, solves, new_entries, added = [], [], [], [], set()
        while roll.stream.busy():
            t0 = time.perf_counter()
            finished = roll.next()
            timings["time/stream_wait"] += time.perf_counter() - t0
            new = [p for role, p in finished if role == "propose"]
            answers = [s for role, s in finished if role != "propose"]
            t0 = time.perf_counter()
            for e in validate(new, executor, timeout_s, step, confirm_runs, buffers, tasks, limits or Limits(),
                              fits) if new else ():
                new_entries.append(e)
                if buffers[e.task].add(e):
                    added.add(id(e))
            for p in new:  # the Monte-Carlo solves of a valid proposal go out as soon as it is validated
                if p.entry is not None:
                    roll.add("mc", p.task, p.entry, _solve_text(render, p.task, p.entry), cfg.n_mc, solve_sampling)
            timings["time/validate"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            judge(answers, executor, timeout_s)
            timings["time/judge"] += time.perf_counter() - t0
            proposals += new
            mc += [s for role, s in finished if role == "mc"]
            solves += [s for role, s in finished if role == "solve"]
            if deferred and not roll.outstanding("propose"):
                deferred = False
                fresh = [(p.task, p.entry) for p in proposals if p.entry is not None]
                for task, entry in solver_entries(buffers, tasks, cfg, rng, fresh):
                    roll.add("solve", task, entry, _solve_text(render, task, entry), cfg.n_solve, solve_sampling)
    finally:
        roll.stream.close()
    timings["time/rollout"] = time.perf_counter() - t_start
    proposals, mc, solves = (sorted(x, key=lambda r: r.sample.prompt_id) for x in (proposals, mc, solves))
    retracted = retract_flawed(proposals, mc + solves, buffers)
    record_groups(mc + solves)
    mark_broken_copies(proposals, buffers, tasks)

    scored_mc = [s for s in mc if not (s.infra or s.no_verdict)]
    trained = (mc if cfg.train_on_mc else []) + solves  # solver samples trained on
    _assign_rewards(proposals, scored_mc, trained, scheme)
    samples = [p.sample for p in proposals if not p.infra] \
        + [s.sample for s in trained if not (s.infra or s.no_verdict)]
    advantages = ESTIMATORS[estimator]([s.reward for s in samples], [s.prompt_id for s in samples],
                                       [(s.task, s.role) for s in samples], baseline)
    weights = token_weights([len(s.completion_token_ids) for s in samples], weighting)
    for s, a, w in zip(samples, advantages, weights):
        s.advantage, s.token_weight = a, w
    metrics = step_metrics(proposals, trained, buffers, added, mc + solves) | dict(timings)
    metrics |= group_metrics([p.sample for p in proposals if not p.infra],
                             [s for s in trained if not (s.infra or s.no_verdict)])
    refused = sum(x.sample.finish_reason == PROMPT_TOO_LONG for x in proposals + mc + solves)
    metrics["sandbox_failures"] = sum(x.infra for x in proposals + mc + solves) - refused
    metrics["gen/prompt_too_long"] = refused
    metrics["retracted_tasks"] = retracted
    metrics["gen/completion_tokens"] = sum(len(x.sample.completion_token_ids) for x in proposals + mc + solves)
    metrics["gen/completions"] = len(proposals) + len(mc) + len(solves)
    metrics["gen/tokens_per_s"] = metrics["gen/completion_tokens"] / max(timings["time/rollout"], 1e-9)
    return StepResult(samples, metrics, new_entries, roll.sent)


class _Rollout:
    """The step's requests on a stream: each gets the next seed (step seed + submission index) and prompt id, so a
    step's samples and their order do not depend on when each request finishes."""

    def __init__(self, stream: Stream, seed: int):
        self.stream, self.seed = stream, seed
        self.ids = _Ids()
        self.open: Counter = Counter()  # role -> requests not finished yet
        self.sent: list[tuple[GenRequest, Sampling]] = []

    def add(self, role: str, task: Task, data, prompt: str, n: int, sampling: Sampling) -> None:
        pid = self.ids()
        self.open[role] += 1
        request = GenRequest(prompt, n, self.seed + pid)
        self.sent.append((request, sampling))
        self.stream.add((role, pid, task, data, prompt, sampling.temperature), request, sampling)

    def outstanding(self, role: str) -> int:
        return self.open[role]

    def next(self) -> list[tuple[str, object]]:
        """(role, _Proposal or _Solve) for every completion of the requests that finished, parsed, in request order."""
        out = []
        for (role, pid, task, data, prompt, temperature), gen in sorted(self.stream.next(), key=lambda kg: kg[0][1]):
            self.open[role] -= 1
            for c in gen.completions:
                sample = _sample(task.name, "propose" if role == "propose" else "solve", pid, prompt, gen, c,
                                 temperature)
                refused = c.finish_reason == PROMPT_TOO_LONG  # the engine could not take it: nothing to train on
                if role == "propose":
                    p = _Proposal(task, data, sample, infra=refused)
                    p.fields, p.reason = (None, "prompt too long") if refused else \
                        _per_sample("parse_proposal", task.parse_proposal, c.text, data)
                    out.append((role, p))
                else:
                    s = _Solve(task, data, sample, infra=refused)
                    s.answer, s.reason = (None, "prompt too long") if refused else \
                        _per_sample("parse_answer", task.parse_answer, c.text, data)
                    out.append((role, s))
        return out


def solver_entries(buffers: Buffers, tasks: dict[str, Task], cfg, rng, fresh: list) -> list[tuple[Task, Entry]]:
    """solve_per_task entries per task: this step's new tasks first (`fresh`, when fresh_solves and their
    Monte-Carlo solves are not trained on already), then tasks drawn from the buffer (uniformly, or by the
    curriculum: TaskBuffer.draw), never one of `fresh` nor one drawn solver_max_draws times already (fewer when
    none is left)."""
    out = []
    for task in tasks.values():
        mine = [e for t, e in fresh if t.name == task.name]
        mine = rng.sample(mine, min(len(mine), cfg.solve_per_task))
        buffer = buffers[task.name]
        draw = buffer.draw if cfg.solver_draw == "curriculum" else buffer.sample
        spent = {e.key for e in buffer.entries()
                 if cfg.solver_max_draws and e.stats.get("draws", 0) >= cfg.solver_max_draws}
        older = draw(cfg.solve_per_task - len(mine), rng, {e.key for _, e in fresh} | spent)
        out += [(task, e) for e in mine + older]
    return out


# ---------------------------------------------------------------- phases


def propose(policy, buffers, tasks, per_task, n, render, rng, sampling, ids) -> list[_Proposal]:
    """One generate call for every proposer prompt of every task; parses each completion (no execution yet)."""
    contexts = [(task, task.propose_context(buffers, rng)) for task in tasks.values() for _ in range(per_task)]
    prompts = [render(task.propose_prompt(ctx)) for task, ctx in contexts]
    gens = _generate(policy, [GenRequest(p, n) for p in prompts], sampling)
    proposals = []
    for (task, ctx), prompt, gen in zip(contexts, prompts, gens):
        pid = ids()
        for c in gen.completions:
            sample = _sample(task.name, "propose", pid, prompt, gen, c, sampling.temperature)
            p = _Proposal(task, ctx, sample)
            p.fields, p.reason = _per_sample("parse_proposal", task.parse_proposal, c.text, ctx)
            proposals.append(p)
    return proposals


@dataclass(frozen=True)
class Limits:
    """What validating one proposal may cost. Every run of it (the gold runs and their confirmations, probe inputs,
    its runs beside the references, follow-up checks) is charged to one budget of `budget_s` server-seconds (CPU
    seconds of the runs, a timed-out run at its full timeout); once it is spent, the proposal's remaining runs are
    not made and it is invalid ("validation budget spent"). Probe runs get `probe_timeout_s` (a probe that takes
    longer is only unanswered); the gold runs and follow-up checks get min(timeout_s, budget_s / 2). The
    references' runs on the proposal's inputs have a budget of their own: a reference that spins there makes
    the comparison unanswered, never the proposal invalid."""

    probe_timeout_s: float = 0.25
    budget_s: float = 2.0


def validate(proposals: list[_Proposal], executor: Executor, timeout_s: float, step: int,
             confirm_runs: int = 2, buffers: Buffers | None = None, tasks: dict[str, Task] | None = None,
             limits: Limits = Limits(), fits=None, dedup: bool = True) -> list[Entry]:
    """Run every parsed proposal in the sandbox in one batch; sets entry or reason on each; returns the new entries
    (copies of a buffer entry, of a reference in the prompt, or of an earlier proposal of this batch are marked
    duplicate instead; `buffers` and `tasks` give the known tasks). `fits(task, entry)`: why an entry's prompts
    would not fit the engine's context, or None (PromptBudget.reason)."""
    todo, budgets = [], {}
    for k, p in enumerate(proposals):
        if p.fields is not None:
            jobs, p.reason = _per_sample("validation_jobs", p.task.validation_jobs, p.fields)
            if jobs is not None:
                same, _ = _per_sample("behaviour_jobs", p.task.behaviour_jobs, p.fields, p.context)
                budgets[k] = budgets[(k, "references")] = limits.budget_s
                own = p.fields.get("program")
                todo.append((k, p, [_limited(j, k, limits, timeout_s) for j in jobs],
                             [_limited(j, k if j.code == own else (k, "references"), limits, timeout_s)
                              for j in same or []]))
    results = _run_jobs([jobs + same for _, _, jobs, same in todo], executor, timeout_s, budgets)
    checks = [res[:len(jobs)] for (_, _, jobs, _), res in zip(todo, results)]
    behaviour = [res[len(jobs):] for (_, _, jobs, _), res in zip(todo, results)]
    if confirm_runs:
        checks = confirm([(p, jobs) for _, p, jobs, _ in todo], checks, executor, timeout_s, confirm_runs, budgets)
    for (k, p, jobs, same_jobs), res, same in zip(todo, checks, behaviour):
        gold = [r for j, r in zip(jobs, res) if not getattr(j, "probe", False)]  # a probe the sandbox failed on
        if any(r.infra for r in gold):  # is only a probe with no answer; a gold run's failure drops the sample
            p.reason, p.infra = "sandbox failure", True
            continue
        gold_failed = any(not r.ok and not r.over_budget for r in gold)  # its own reason first
        mine = [r for j, r in zip(jobs + same_jobs, res + same) if getattr(j, "group", None) == k]
        if not gold_failed and (any(r.over_budget for r in mine) or budgets[k] <= 0):
            p.reason = _over_budget(limits)
            continue
        p.entry, p.reason = _per_sample("make_entry", p.task.make_entry, p.fields, res, step)
        if p.entry is not None and _per_sample("copies_a_reference", p.task.copies_a_reference, p.fields,
                                               p.context, same)[0]:
            p.verbatim = _verbatim(p)
            p.entry, p.reason, p.duplicate = None, "duplicate: behaves like a reference", True
    follow_up(proposals, executor, timeout_s, limits, budgets)
    for p in proposals:
        if p.entry is not None and fits is not None:
            too_long, error = _per_sample("fits", fits, p.task, p.entry)
            if too_long or error:
                p.entry, p.reason = None, too_long or error
    if dedup:  # off only for audits that validate unrelated tasks side by side
        mark_duplicates(proposals, known_tasks(buffers, tasks), buffers)
    return [p.entry for p in proposals if p.entry is not None]


def _verbatim(p: _Proposal) -> bool:
    """Is a proposal's task (its entry) the same as a reference its prompt showed, by novelty key?"""
    key = _per_sample("novelty_key", p.task.novelty_key, p.entry.data)[0]
    return key is not None and key in {_per_sample("novelty_key", p.task.novelty_key, r)[0]
                                       for r in p.context.get("references", ())}


def _limited(job: Job, group, limits: Limits, timeout_s: float) -> Job:
    """A run charged to its proposal's budget (`group`): a probe with the probe timeout, a gold run or a follow-up
    check with min(timeout_s, budget_s / 2)."""
    if not hasattr(job, "group"):  # Equal: no sandbox
        return job
    probe = isinstance(job, Run) and job.probe
    limit = limits.probe_timeout_s if probe else limits.budget_s / 2
    return replace(job, timeout_s=min(limit, timeout_s), group=group)


def _over_budget(limits: Limits) -> str:
    return f"validation budget spent (runs past {limits.budget_s:g} server-s)"


def follow_up(proposals: list[_Proposal], executor: Executor, timeout_s: float, limits: Limits = Limits(),
              budgets: dict | None = None) -> None:
    """Runs that need a proposal's gold answer (abduction: f on its own output and on inputs read off it;
    induction: programs copied from the hint), in one batch, charged to what is left of each proposal's
    validation budget; a trivial result makes the proposal invalid."""
    todo, budgets = [], {} if budgets is None else budgets
    for k, p in enumerate(proposals):
        if p.entry is not None:
            jobs, p.reason = _per_sample("followup_jobs", p.task.followup_jobs, p.entry)
            if jobs:
                budgets.setdefault(k, limits.budget_s)
                # follow-ups check what a solver would be judged on: no shorter timeout than the gold run's
                todo.append((p, [_limited(replace(j, probe=False) if isinstance(j, Run) else j, k, limits,
                                          timeout_s) for j in jobs]))
            elif jobs is None:
                p.entry = None
    for (p, _), res in zip(todo, _run_jobs([jobs for _, jobs in todo], executor, timeout_s, budgets)):
        if any(r.over_budget for r in res):
            p.entry, p.reason = None, _over_budget(limits)
        elif any(r.infra for r in res):  # the checks could not run: neither trusted nor scored
            p.entry, p.reason, p.infra = None, "sandbox failure", True
        else:
            _, p.reason = _per_sample("check_followup", p.task.check_followup, p.entry, res)
            if p.reason is not None:
                p.entry = None


def known_tasks(buffers: Buffers | None, tasks: dict[str, Task] | None) -> set[str]:
    """The novelty keys of every entry of every buffer (seeds and retired entries included)."""
    known = set()
    if len(_NOVELTY) > 1 << 16:
        _NOVELTY.clear()
    for name, buffer in (buffers or {}).items():
        task = (tasks or {}).get(name)
        for e in buffer.entries() if task is not None else ():
            if (name, e.key) not in _NOVELTY:  # an entry's key is a digest of its data: the novelty key follows
                _NOVELTY[(name, e.key)] = _per_sample("novelty_key", task.novelty_key, e.data)[0]
            known.add(_NOVELTY[(name, e.key)])
    return known


_NOVELTY: dict[tuple[str, str], str | None] = {}  # (task, entry key) -> novelty key


def mark_duplicates(proposals: list[_Proposal], known: set[str], buffers: Buffers | None = None) -> None:
    """A valid proposal whose novelty key is known, or equals one of the references its prompt showed, or an
    earlier proposal's in this batch, is a duplicate: no entry, the duplicate penalty. So is a near-copy
    (Task.near_copy) of a buffer entry or of an earlier proposal of this batch."""
    accepted: list[_Proposal] = []
    for p in proposals:
        if p.entry is None:
            continue
        key, reason = _per_sample("novelty_key", p.task.novelty_key, p.entry.data)
        refs = {_per_sample("novelty_key", p.task.novelty_key, r)[0] for r in p.context.get("references", ())}
        others = []
        if type(p.task).near_copy is not Task.near_copy:  # only tasks that define near-copies pay for the scan
            known_entries = buffers[p.task.name].entries() if buffers and p.task.name in buffers else []
            others = [e.data for e in known_entries] + [q.entry.data for q in accepted if q.task.name == p.task.name]
        if key is None:
            p.entry, p.reason = None, reason
        elif key in known or key in refs:
            p.entry, p.reason, p.duplicate = None, "duplicate: same program as a known task", True
            p.verbatim = key in refs
        elif any(_per_sample("near_copy", p.task.near_copy, p.entry.data, o)[0] for o in others):
            p.entry, p.reason, p.duplicate = None, "duplicate: a near-copy of a known task", True
        else:
            known.add(key)
            accepted.append(p)


def confirm(todo: list[tuple], results: list[list[ExecResult]], executor: Executor, timeout_s: float,
            runs: int, budgets: dict | None = None) -> list[list[ExecResult]]:
    """Run every output that could become a gold answer again, under hash seeds it has not run under yet: an output
    that depends on the seed with probability 1/2 passes two runs half the time, four runs one time in eight."""
    again = [(i, k, replace(job, runs=runs, avoid=frozenset(res.seeds)))
             for i, ((_, jobs), res_list) in enumerate(zip(todo, results))
             for k, (job, res) in enumerate(zip(jobs, res_list)) if res.ok and isinstance(job, Run) and not job.probe]
    confirmed = _run_jobs([[job for *_, job in again]], executor, timeout_s, budgets)[0] if again else []
    results = [list(r) for r in results]
    if any(set(res.seeds) & set(results[i][k].seeds) for (i, k, _), res in zip(again, confirmed)) \
            and "reused seeds" not in _LOGGED:
        _LOGGED.add("reused seeds")
        log.warning("self-play: the sandbox pool is too small to confirm outputs under new hash seeds (it needs "
                    "determinism_runs + confirm_runs servers); confirmations reuse seeds")
    for (i, k, _), res in zip(again, confirmed):
        if res.infra or res.over_budget:
            results[i][k] = res
        elif not res.ok or res.output != results[i][k].output:
            results[i][k] = ExecResult(False, error="non-deterministic: other hash seeds gave another output",
                                       nondeterministic=True)
    return results


def judge(solves: list[_Solve], executor: Executor, timeout_s: float) -> None:
    """Check every parsed answer, all executor work in one batch."""
    todo = []
    for s in solves:
        if s.reason is None:
            jobs, s.reason = _per_sample("check_jobs", s.task.check_jobs, s.entry, s.answer)
            if jobs is not None:
                todo.append((s, jobs))
    results = _run_jobs([jobs for _, jobs in todo], executor, timeout_s)
    for (s, _), res in zip(todo, results):
        s.infra = any(r.infra for r in res)
        s.no_verdict = s.task.checks_proposer_program and any(r.nondeterministic for r in res)
        if s.no_verdict:
            s.flawed_task = not _seed_ordered_input(s)
        elif not s.infra:
            correct, s.reason = _per_sample("judge", s.task.judge, s.entry, s.answer, res)
            s.correct = correct is True


def _seed_ordered_input(s: _Solve) -> bool:
    """Does the solver's input itself iterate in a hash-seed order (a set of strings)? Then the proposer's program
    disagreeing with itself on it may be the answer's doing, not the program's."""
    ordered, _ = _per_sample("input_order_depends_on_seed", input_order_depends_on_seed, s.answer)
    return ordered is not False


def retract_flawed(proposals: list[_Proposal], solves: list[_Solve], buffers: Buffers) -> int:
    """A program that answers one input with two outputs (a timeout in one run included) does not define a task
    (abduction checks run the proposer's program on the solvers' inputs): out of the buffer, and the proposal that
    made it this step is invalid. When the solver's input was to blame, the proposal only loses its learnability
    reward: a verdict that depends on the hash seed is no measure of difficulty. Returns how many were retracted."""
    flawed = {s.entry.key: s.entry for s in solves if s.flawed_task}
    unstable = {s.entry.key for s in solves if s.no_verdict}
    for entry in flawed.values():
        buffers[entry.task].remove(entry.key)
    for p in proposals:
        if p.entry is not None and p.entry.key in flawed:
            p.entry, p.reason = None, "non-deterministic on a solver's input"
        elif p.entry is not None and p.entry.key in unstable:
            p.unstable = True
    return len(flawed)


def mark_broken_copies(proposals: list[_Proposal], buffers: Buffers, tasks: dict[str, Task]) -> None:
    """A well-formed proposal the sandbox rejected is a copy when it is a known task (its novelty key: a reference,
    any buffer entry) or an edit of one (Task.resembles: the references its prompt showed and every entry of its
    task's buffer, which the solver prompts show too). So pasting a task and breaking it pays the copy penalty,
    not the failed rung's."""
    rejected = [p for p in proposals if p.entry is None and p.fields is not None and not (p.duplicate or p.infra)]
    if not rejected:
        return
    known = known_tasks(buffers, tasks)
    for p in rejected:
        key = _per_sample("novelty_key", p.task.novelty_key, p.fields)[0]
        refs = {_per_sample("novelty_key", p.task.novelty_key, r)[0] for r in p.context.get("references", ())}
        others = list(p.context.get("references", ()))
        if p.task.name in buffers:
            others += [e.data for e in buffers[p.task.name].entries()]
        if key is not None and (key in known or key in refs):
            p.duplicate, p.verbatim = True, key in refs
            p.reason = f"duplicate: a known task, rejected ({p.reason})"
        elif _per_sample("resembles", p.task.resembles, p.fields, others)[0]:
            p.duplicate, p.reason = True, f"duplicate: an edited known task, rejected ({p.reason})"


def record_groups(answers: list[_Solve]) -> None:
    """Count each prompt's group of answers (Monte-Carlo and buffer solves) in its entry's stats, for the solver
    curriculum; answers without a verdict (sandbox failure, a program that disagreed with itself) do not count."""
    groups: dict[int, list[_Solve]] = {}
    for s in answers:
        if not (s.infra or s.no_verdict):
            groups.setdefault(s.sample.prompt_id, []).append(s)
    for group in groups.values():
        record_group(group[0].entry, [s.correct for s in group])


def _assign_rewards(proposals, mc, solves, scheme: RewardScheme) -> None:
    rates: dict[int, list[bool]] = {}
    for s in mc:
        rates.setdefault(id(s.entry), []).append(s.correct)
    for p in proposals:
        if p.entry is not None:
            outcomes = rates.get(id(p.entry), [])
            p.solve_rate = sum(outcomes) / len(outcomes) if outcomes else 0.0
        well_formed = p.fields is not None
        p.sample.reward = proposer_reward(p.entry is not None, p.solve_rate, scheme, well_formed)
        p.sample.outcome = "valid" if p.entry is not None else f"invalid: {p.reason}"
        if p.duplicate:
            p.sample.reward, p.sample.outcome = scheme.propose_duplicate, p.reason
        if p.unstable:
            p.sample.reward = scheme.propose_extreme
            p.sample.outcome = "valid: no learnability (a solver's input gave no verdict)"
        p.sample.extra["solve_rate"] = p.solve_rate
    for s in solves:
        outcome = "unparseable" if s.reason else ("correct" if s.correct else "wrong")
        s.sample.reward = solver_reward(outcome, scheme)
        s.sample.outcome = f"unparseable: {s.reason}" if s.reason else outcome


# ---------------------------------------------------------------- metrics


def step_metrics(proposals: list[_Proposal], solves: list[_Solve], buffers: Buffers, added: set,
                 completions: list[_Solve] | None = None) -> dict:
    """Per task: proposal validity, copies, trivial tasks, rejection reasons, truncation; accuracy and rewards of
    the trained solver samples (`solves`); think and truncation rates over every solver completion."""
    m: dict[str, float] = {}
    completions = solves if completions is None else completions
    for name in {p.task.name for p in proposals} | {s.task.name for s in solves} | set(buffers):
        props = [p for p in proposals if p.task.name == name]
        valid = [p for p in props if p.entry is not None]
        if props:
            copies = sum(p.duplicate for p in props)
            m[f"propose/n/{name}"] = len(props)
            m[f"propose/valid_rate/{name}"] = len(valid) / len(props)
            m[f"propose/copy_rate/{name}"] = copies / max(1, len(valid) + copies)
            m[f"propose/verbatim_copy_rate/{name}"] = sum(p.verbatim for p in props) / max(1, len(valid) + copies)
            m[f"propose/trivial_rate/{name}"] = _mean(_trivial(p.reason) for p in props)
            m[f"propose/truncated/{name}"] = _mean(p.sample.finish_reason == "length" for p in props)
            m[f"reward/propose/{name}"] = _mean(p.sample.reward for p in props)
            m[f"length/propose/{name}"] = _mean(len(p.sample.completion_token_ids) for p in props)
            for reason, count in Counter(p.reason for p in props if p.entry is None).items():
                m[f"propose/reject/{name}/{reason}"] = count
            m[f"propose/new_programs/{name}"] = sum(id(p.entry) in added for p in valid)
        if valid:
            m[f"propose/learnable/{name}"] = _mean(0 < p.solve_rate < 1 for p in valid)
            m[f"propose/solve_rate/{name}"] = _mean(p.solve_rate for p in valid)
            rates = [p.solve_rate for p in valid if not p.unstable]
            m[f"propose/new_learnable/{name}"] = sum(0 < r < 1 for r in rates)
            m[f"propose/new_solved_all/{name}"] = sum(r == 1 for r in rates)
            m[f"propose/new_solved_none/{name}"] = sum(r == 0 for r in rates)
        every = [s for s in completions if s.task.name == name]
        if every:
            opened = every[0].task.settings.get("think_opened", False)
            m[f"solve/think_rate/{name}"] = _mean(has_reasoning(s.sample.completion, opened) for s in every)
            chars = sorted(reasoning_chars(s.sample.completion, opened) for s in every)
            m[f"length/think_chars/{name}"] = _mean(chars)
            for q in (10, 50, 90):
                m[f"length/think_chars_p{q}/{name}"] = float(chars[min(len(chars) - 1, len(chars) * q // 100)])
            m[f"solve/truncated/{name}"] = _mean(s.sample.finish_reason == "length" for s in every)
        sols = [s for s in solves if s.task.name == name]
        if sols:
            m[f"solve/n/{name}"] = len(sols)
            m[f"solve/accuracy/{name}"] = _mean(s.correct for s in sols)
            m[f"solve/unparseable/{name}"] = _mean(s.reason is not None for s in sols)
            m[f"reward/solve/{name}"] = _mean(s.sample.reward for s in sols)
            m[f"length/solve/{name}"] = _mean(len(s.sample.completion_token_ids) for s in sols)
            entries = {s.entry.key: s.entry for s in sols}
            m[f"solve/distinct_prompts/{name}"] = len(entries)
            m[f"solve/max_draws/{name}"] = max(e.stats.get("draws", 0) for e in entries.values())
        if name in buffers:
            m[f"buffer/{name}"] = len(buffers[name])
    return m


def group_metrics(proposals: list[ScoredSample], solves: list[_Solve]) -> dict:
    """Where the gradient goes, per task. groups/flat/<task>/<role>: the share of reward groups with no variance
    (a proposer group is a task's proposals of the step, TRR++'s group; a solver group is one prompt's answers).
    adv_mass/solve_always|solve_never/<task>: the share of the solver's positive advantage (times tokens) that
    went to prompts whose answers were all correct / all wrong: a baseline that pays for memorised prompts
    shows up in the first."""
    m: dict[str, float] = {}
    for name in sorted({p.task for p in proposals}):
        rewards = {p.reward for p in proposals if p.task == name}
        m[f"groups/flat/{name}/propose"] = float(len(rewards) == 1)
    for name in sorted({s.task.name for s in solves}):
        groups: dict[int, list[_Solve]] = {}
        for s in solves:
            if s.task.name == name:
                groups.setdefault(s.sample.prompt_id, []).append(s)
        m[f"groups/flat/{name}/solve"] = _mean(len({s.sample.reward for s in g}) == 1 for g in groups.values())
        mass = {"always": 0.0, "never": 0.0, "all": 0.0}
        for g in groups.values():
            kind = "always" if all(s.correct for s in g) else "never" if not any(s.correct for s in g) else None
            for s in g:
                positive = max(s.sample.advantage, 0.0) * len(s.sample.completion_token_ids)
                mass["all"] += positive
                if kind:
                    mass[kind] += positive
        m[f"adv_mass/solve_always/{name}"] = mass["always"] / mass["all"] if mass["all"] else 0.0
        m[f"adv_mass/solve_never/{name}"] = mass["never"] / mass["all"] if mass["all"] else 0.0
    return m


# ---------------------------------------------------------------- seeding


def _solve_text(render, task, entry) -> str:
    """A solver prompt as the engine sees it: a Renderer adds the task type's worked example when asked
    (selfplay.format_example); any other callable (tests) wraps the instruction alone."""
    solve = getattr(render, "solve", None)
    return solve(task, entry) if solve else render(task.solve_prompt(entry))


def seed_buffers(buffers: Buffers, tasks: dict[str, Task], executor: Executor, timeout_s: float = 5.0) -> None:
    """Put each task's seed entries (AZR's identity program, a math seed) into its buffer, validated like any
    proposal. Raises if a seed fails: that is a bug in the task or the sandbox, not a model outcome."""
    for task in tasks.values():
        for fields_, _ctx in task.seed_proposals():
            (res,) = _run_jobs([task.validation_jobs(fields_)], executor, timeout_s)
            buffers[task.name].add(task.make_entry(fields_, res, step=0, seed=True))


def fill_buffers(policy, buffers, tasks, executor, cfg, render, rng, target: int, max_rounds: int,
                 timeout_s: float = 5.0, on_round=None, confirm_runs: int = 2, limits: "Limits | None" = None,
                 fits=None) -> int:
    """The seeding phase: rounds of propose + validate (no training) until every buffer holds `target` entries or
    `max_rounds` have run. Returns the number of rounds."""
    for rounds in range(max_rounds):
        sampling = Sampling(cfg.temperature, cfg.top_p, cfg.max_tokens, seed=rng.randrange(2**31))
        short = {n: t for n, t in tasks.items() if sum(not e.seed for e in buffers[n].entries()) < target}
        if not short:
            return rounds
        proposals = propose(policy, buffers, short, max(cfg.propose_per_task, 1), cfg.n_propose, render, rng,
                            sampling, _Ids())
        for e in validate(proposals, executor, timeout_s, step=0, confirm_runs=confirm_runs, buffers=buffers,
                          tasks=tasks, limits=limits or Limits(), fits=fits):
            buffers[e.task].add(e)
        if on_round:
            on_round(rounds, buffers.sizes())
    return max_rounds


# ---------------------------------------------------------------- helpers


def _generate(policy: Policy, requests: list[GenRequest], sampling: Sampling) -> list[Generation]:
    if not requests:
        return []
    gens = policy.generate(requests, sampling)
    if len(gens) != len(requests) or any(len(g.completions) != r.n for g, r in zip(gens, requests)):
        raise RuntimeError("policy returned a different number of generations or completions than requested")
    return gens


def _run_jobs(groups: list[list[Job]], executor: Executor, timeout_s: float,
              budgets: dict | None = None) -> list[list[ExecResult]]:
    """Send every job of every group to the executor in one batch; results regrouped in order. `budgets`: each
    proposal's validation budget (Executor.map)."""
    flat = [j for g in groups for j in g]
    if not flat:
        results = []
    else:
        results = executor.map(flat, timeout_s, budgets=budgets) if budgets else executor.map(flat, timeout_s)
    out, i = [], 0
    for g in groups:
        out.append(results[i:i + len(g)])
        i += len(g)
    return out


def _per_sample(where: str, fn, *args):
    """(fn(*args), None), or (None, reason) when fn raises on this one sample's model text.

    ParseError and Invalid are the expected outcomes. Anything else (a literal past Python's digit limit, absurd
    nesting, an overflow) is still the sample's failure, not the step's: it is recorded as `unexpected <type>`
    and logged once per kind with its traceback, so a real bug in task code stays visible."""
    try:
        return fn(*args), None
    except (ParseError, Invalid) as e:
        return None, str(e) or type(e).__name__
    except Exception as e:
        kind = (where, type(e).__name__)
        if kind not in _LOGGED:
            _LOGGED.add(kind)
            log.warning("self-play: %s raised %s on a model completion (scored as a failure of that sample)",
                        where, type(e).__name__, exc_info=True)
        return None, f"unexpected {type(e).__name__}"


def _sample(task: str, role: str, prompt_id: int, prompt: str, gen: Generation, c, temperature: float) -> ScoredSample:
    return ScoredSample(task=task, role=role, prompt_id=prompt_id, prompt=prompt, completion=c.text,
                        prompt_token_ids=gen.prompt_token_ids, completion_token_ids=c.token_ids,
                        logprobs=c.logprobs, version=gen.version, temperature=temperature,
                        finish_reason=c.finish_reason, worker=gen.worker)


def _trivial(reason: str | None) -> bool:
    return bool(reason) and (reason.startswith("trivial") or "placeholder" in reason)


def _mean(values) -> float:
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else 0.0
