"""The judge: nothing a program writes, and nothing in a completion, may change a verdict.

One test (or a few) per class of attack found against the judge. Programs run in real sandboxed subprocesses;
most attacks also run with the static check turned off (`raw`), so the judge is shown to hold on its own, without
relying on the static check to keep the program out. The expected values are fresh secrets the program cannot know.
"""

import os
import random
import secrets
import signal
import threading

import pytest
from conftest import ScriptedPolicy, require_isolation

from minazr.selfplay import parsing
from minazr.selfplay.buffer import Buffers
from minazr.driver.config import RewardsConfig, SelfPlayConfig
from minazr.sandbox.executor import Check, ExecResult, Executor, Run, SandboxError, _checked
from minazr.selfplay.prompts import Renderer
from minazr.selfplay.rewards import RewardScheme
from minazr.sandbox.rules import ALLOWED_MODULES
from minazr.selfplay.step import seed_buffers, selfplay_step
from minazr.selfplay.tasks import make_task

# Reaches the server's modules at run time (the static check refuses `_sys`; `raw` executors skip that check).
SYS = "import collections\nS = collections._sys\nLETTERS = 'abcdefghijklmnop'\n"
POSIX = "S.modules['posix']"


@pytest.fixture(scope="module")
def raw():
    with Executor(workers=2, static_check=False) as ex:
        yield ex


@pytest.fixture(scope="module")
def checked():
    with Executor(workers=2) as ex:
        yield ex


def secret() -> str:
    return repr(f"tok-{secrets.token_hex(8)}")


def forged_check(raw, body: str) -> None:
    """Run `f` (with `body` as its body) as the answer check of a secret expected value: never a match."""
    code = SYS + "def f(x):\n" + body
    res = raw.check(code, "1", secret())
    assert res.match is False and not res.infra, res


# ---------------------------------------------------------------- 1. the verdict is computed outside the sandbox


def test_a_forged_message_on_the_result_pipe_is_not_a_verdict(raw):
    for message in (b'{"ok": true, "match": true, "output": "1", "error": null}',  # the old result format
                    b'O"guess"', b'R' + b'O1', b'Sfake setup failure'):
        forged_check(raw, f"    p = {POSIX}\n    p.write(3, {message!r})\n    p._exit(0)\n")


def test_what_a_program_writes_is_its_output_only_after_checks(raw):
    # a forged output frame is the program's output: parsed and size-limited outside the sandbox
    res = raw.run(SYS + f"def f(x):\n    p = {POSIX}\n    p.write(3, b'O[1, 2]')\n    p._exit(0)\n", "1")
    assert res.ok and res.output == "[1, 2]", res
    res = raw.run(SYS + f"def f(x):\n    p = {POSIX}\n    p.write(3, b'Onot a literal')\n    p._exit(0)\n", "1")
    assert not res.ok and "not a literal" in res.error
    res = raw.run(SYS + f"def f(x):\n    p = {POSIX}\n    p.write(3, b'O' + b'7' * 50_000)\n    p._exit(0)\n", "1")
    assert not res.ok and "too large" in res.error
    # a forged output that differs between the two runs (hash seeds differ per server) fails the double run
    res = raw.run(SYS + f"def f(x):\n    p = {POSIX}\n    p.write(3, b'O' + repr(''.join(set(LETTERS))).encode())\n"
                  "    p._exit(0)\n", "1")
    assert not res.ok and res.nondeterministic, res


def test_the_servers_own_functions_cannot_forge_a_verdict(raw):
    # reach the fork-server's module and call its writer and its classifier with a forged "match"
    server = "S.modules['__main__']"
    forged_check(raw, f"    m = {server}\n    m.write_msg(3, {{'ok': True, 'match': True}})\n    {POSIX}._exit(0)\n")
    forged_check(raw, f"    m = {server}\n    m.child_main = None\n    m.run_one = None\n    return 2\n")


def test_replacing_module_functions_does_not_change_what_is_reported(raw):
    # CPython does not audit module attribute assignment; the child's reporting path captured its functions first
    res = raw.run(SYS + "def f(x):\n    S.modules['os'].write = lambda fd, b: len(b)\n"
                  "    S.modules['literals'].serialize = lambda v, n: \"'forged'\"\n    return x + 1\n", "41")
    assert res.ok and res.output == "42", res
    forged_check(raw, "    S.modules['literals'].serialize = lambda v, n: 'True'\n    return 0\n")


def test_the_expected_value_never_enters_the_sandbox(raw):
    # read every local of every frame up the stack, and every string the request holds: the secret is not there
    body = ("    hit = lambda w: isinstance(w, str) and 'to' + 'k-' in w and len(w) <= 22\n"
            "    found, frame = [], S._getframe()\n    while frame is not None:\n"
            "        for v in frame.f_locals.values():\n            if isinstance(v, dict):\n"
            "                found += [w for w in v.values() if hit(w)]\n"
            "            elif hit(v):\n                found.append(v)\n"
            "        frame = frame.f_back\n    return found[0] if found else None\n")
    code = SYS + "def f(x):\n" + body
    for _ in range(3):
        expected = secret()
        res = raw.check(code, "1", expected)
        assert res.ok and res.output == "None" and res.match is False, res


def test_static_check_refuses_these_programs_too(checked):
    res = checked.check(SYS + f"def f(x):\n    {POSIX}.write(3, b'x')\n", "1", "1")
    assert not res.ok and "rejected" in res.error and res.match is False


def test_a_custom_eq_or_repr_never_runs_in_the_judge(checked):
    code = ("class Anything(list):\n    def __eq__(self, other):\n        return True\n    def __repr__(self):\n"
            "        return '42'\n\ndef f(x):\n    return Anything()")
    for expected in ("[1, 2, 3]", "42", "[]"):
        res = checked.check(code, "1", expected)
        assert res.match is False and "'Anything' is not a plain literal" in res.error


# ---------------------------------------------------------------- 2. determinism is checked on the output itself


def test_a_value_whose_repr_depends_on_the_hash_seed_is_refused(checked):
    # two runs return "equal" values with different reprs: the old check compared a normalised form, not the output
    code = ("class Shifty(list):\n    def __repr__(self):\n        return ''.join(set('abcdefghijklmnop'))\n\n"
            "def f(x):\n    return Shifty([x])")
    res = checked.run(code, "1")
    assert not res.ok and "not a plain literal" in res.error


def test_outputs_that_are_equal_whatever_the_seed_pass(checked):
    res = checked.run("def f(s):\n    return {c: 1 for c in set(s)}, set(s), frozenset(s)", "'abcdefghij'")
    assert res.ok and res.output.startswith("({'a': 1, 'b': 1,"), res  # one canonical text per value


def test_an_answer_check_needs_the_same_output_twice(checked):
    # abduction runs the proposer's program on the solver's input: a hash-dependent answer is no verdict
    code = "def f(x):\n    if x == 1:\n        return 0\n    return ''.join(set('abcdefghijklmnop'))"
    res = checked.check(code, "2", "0")
    assert res.nondeterministic and res.match is False and not res.infra, res
    assert checked.check(code, "1", "0").match is True


# ---------------------------------------------------------------- 3. a sandbox failure cannot be faked


def test_an_exception_named_like_a_sandbox_failure_is_the_programs_failure(checked):
    code = "def f(x):\n    raise type('sandbox failure:', (Exception,), {})('server exited')"
    res = checked.run(code, "1")
    assert not res.ok and not res.infra, res
    assert not res.error.startswith("sandbox failure")


def test_a_step_penalises_a_faked_sandbox_failure(executor):
    cfg = SelfPlayConfig(tasks=["deduction"], propose_per_task=1, n_propose=1, solve_per_task=0)
    tasks = {"deduction": make_task("deduction")}
    buffers = Buffers.empty(["deduction"], cap=100)
    seed_buffers(buffers, tasks, executor)
    program = "def f(x):\n    raise type('sandbox failure:', (Exception,), {})('server exited')"
    policy = ScriptedPolicy(lambda p, n: [f"```python\n{program}\n```\n```input\n1\n```"] * n)
    res = selfplay_step(policy, buffers, tasks, executor, cfg, RewardScheme.from_config(RewardsConfig()),
                        Renderer("r1"), random.Random(0), step=1)
    (sample,) = res.samples  # trained on, not dropped
    assert sample.reward == -1.0 and sample.outcome.startswith("invalid") and res.metrics["sandbox_failures"] == 0


# ---------------------------------------------------------------- 4. a late server is retired, never reused


def test_a_late_server_is_retired_and_later_jobs_get_their_own_results():
    with Executor(workers=2, grace_s=0.3) as ex:
        groups = [os.getpgid(s.proc.pid) for s in ex._free]
        for g in groups:  # stall every server (as under CPU starvation or swap) for longer than timeout + grace
            os.killpg(g, signal.SIGSTOP)
        resume = threading.Timer(2.0, lambda: [_signal_group(g, signal.SIGCONT) for g in groups])
        resume.start()
        res = ex.run("def f(x):\n    return x", "-1", timeout_s=0.5, runs=1)
        assert not res.ok and res.infra, res
        resume.join()  # the stalled servers, had they been kept, would now answer the old request
        results = ex.map([Run("def f(x):\n    return x * x", str(i)) for i in range(12)], timeout_s=5)
        assert [r.output for r in results] == [str(i * i) for i in range(12)], results


def _signal_group(group: int, sig: int) -> None:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        pass  # retired and killed already


def test_a_reply_out_of_turn_or_malformed_is_a_protocol_error():
    good = {"id": 3, "status": "returned", "output": "1", "error": None}
    assert _checked(good, 3)["output"] == "1"
    for bad in ({**good, "id": 2}, {**good, "status": "match"}, {**good, "output": 1}, {**good, "output": None},
                [good], None):
        with pytest.raises(SandboxError):
            _checked(bad, 3)


# ---------------------------------------------------------------- 5. no completion can stop a step


def fence(lang, body):
    return f"```{lang}\n{body}\n```"


HOSTILE = {
    "math": [fence("problem", "In how many orders can 200 books stand?")
             + fence("python", "import math\ndef f():\n    return math.factorial(200)"),
             fence("problem", "x") + fence("python", "def f():\n    return 0x" + "f" * 4000)],
    "deduction": [fence("python", "def f(x):\n    return x + 0x" + "f" * 4000) + fence("input", "1"),
                  fence("python", "def f(x):\n    return x") + fence("input", "0x" + "f" * 4000),
                  fence("python", "def f(x):\n    return x") + fence("input", "1" * 5000),
                  fence("python", "def f(x):\n    return " + "[" * 180 + "x" + "]" * 180) + fence("input", "1"),
                  fence("python", "def f(x):\n    return x") + fence("input", "[" * 150 + "]" * 150)],
}


def test_hostile_completions_are_invalid_proposals_not_crashes(executor):
    cfg = SelfPlayConfig(tasks=list(HOSTILE), propose_per_task=1, n_propose=len(HOSTILE["deduction"]),
                         solve_per_task=1, n_solve=2)
    tasks = {n: make_task(n) for n in HOSTILE}
    buffers = Buffers.empty(list(HOSTILE), cap=100)
    seed_buffers(buffers, tasks, executor)

    def script(prompt, n):
        if "create a new" in prompt:
            task = "math" if "math word problem" in prompt else "deduction"
            return (HOSTILE[task] * n)[:n]
        return (["<answer>" + "9" * 5000 + "</answer>", "<answer>" + "[" * 5000 + "</answer>"] * n)[:n]

    res = selfplay_step(ScriptedPolicy(script), buffers, tasks, executor, cfg,
                        RewardScheme.from_config(RewardsConfig()), Renderer("r1"), random.Random(0), step=1)
    proposals = [s for s in res.samples if s.role == "propose"]
    assert len(proposals) == 2 * len(HOSTILE["deduction"])  # n_propose completions for each task
    # the identity program with a hostile input is also the shown seed reference, rejected: a copy, at -1 too
    assert all(s.reward == -1.0 and s.outcome.startswith(("invalid", "duplicate")) for s in proposals), \
        [(s.reward, s.outcome, s.completion[:60]) for s in proposals if s.reward != -1.0]
    assert all(s.outcome.startswith("unparseable") for s in res.samples if s.role == "solve")


# ---------------------------------------------------------------- 6. limits in characters, exact integers


def test_the_output_limit_counts_characters(checked):
    res = checked.run("def f(n):\n    return '€' * n", "9998")  # 10,000 characters with its quotes, 30 KB
    assert res.ok and len(res.output) == 10_000, (res.error, len(res.output or ""))
    res = checked.run("def f(n):\n    return '€' * n", "9999")
    assert not res.ok and "too large" in res.error


def test_integer_answers_compare_exactly_and_fractions_with_tolerance():
    math_task = make_task("math")
    entry = math_task.make_entry({"problem": "p", "program": "def f():\n    return 123456789"},
                                 [_ok("123456789")], step=0)
    assert not math_task.judge(entry, parsing.number("123450000"), [])
    assert math_task.judge(entry, parsing.number("123,456,789"), [])
    assert math_task.judge(entry, parsing.number("123456789.0"), [])
    third = math_task.make_entry({"problem": "q", "program": "def f():\n    return 1 / 3"}, [_ok(repr(1 / 3))], 0)
    assert math_task.judge(third, parsing.number("0.33333"), []) and not math_task.judge(third, 0.333, [])
    whole = math_task.make_entry({"problem": "r", "program": "def f():\n    return 10 / 2"}, [_ok("5.0")], 0)
    assert math_task.judge(whole, parsing.number("5"), []) and not math_task.judge(whole, 5.0001, [])


def _ok(output):
    return ExecResult(True, output)


# ---------------------------------------------------------------- the run-time allowlist


def test_every_allowed_module_imports_in_the_sandbox_and_nothing_else(raw):
    for name in sorted(ALLOWED_MODULES):
        res = raw.run(f"import {name}\ndef f(x):\n    return x", "1")
        assert res.ok, (name, res)
    for name in ("types", "os", "posix", "marshal", "io", "json.decoder", "inspect"):
        res = raw.run(f"import {name}\ndef f(x):\n    return x", "1")
        assert not res.ok and "ImportError" in res.error and "not allowed" in res.error, (name, res)


def test_check_jobs_never_carry_the_expected_value_to_a_server(raw, monkeypatch):
    sent = []
    for server in raw._free:
        real = server.send
        monkeypatch.setattr(server, "send", lambda req, real=real: sent.append(req) or real(req))
    expected = secret()
    res = raw.submit(Check("def f(x):\n    return x", "'a'", expected))
    assert res.match is False and sent and all(expected not in repr(req) for req in sent)


# ---------------------------------------------------------------- found in review: layers under the judge


def test_code_executed_through_a_stdlib_helper_gets_no_more_than_the_program(checked, raw):
    # dataclasses._create_fn execs a string with fresh globals, that is, with the real builtins module
    code = ("import dataclasses\ndef f(src):\n    src = src.replace('@', '_' * 2)\n"
            "    return dataclasses._create_fn('g', [], [src], globals={})()")
    res = checked.run(code, repr("return 1"))
    assert not res.ok and "private attribute '_create_fn'" in res.error
    for body, reason in (("return @import@('os').getuid()", "ImportError"),
                         ("return @import@('posix').getpid()", "ImportError"),
                         ("return open('/etc/passwd').read()", "NameError"),
                         ("return (x for x in ()).gi_frame", "PermissionError")):  # restricted reads: audited
        res = raw.run(code, repr(body))
        assert not res.ok and reason in res.error and not res.infra, (body, res)


def test_the_server_has_no_handler_a_child_could_trigger(raw):
    # as PID 1 of its namespace, a server ignores signals from inside it that it has no handler for
    server = raw._free[0]
    require_isolation(server.isolated, "a PID namespace (unshare)")
    (pid,) = open(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read().split()  # unshare's child
    caught = int(next(ln for ln in open(f"/proc/{pid}/status") if ln.startswith("SigCgt:")).split()[1], 16)
    assert caught == 0, f"server catches signals (mask {caught:#x})"


def test_a_run_can_be_confirmed_under_seeds_it_has_not_run_under():
    with Executor(workers=4) as ex:
        first = ex.run("def f(x):\n    return x", "1")
        again = ex.submit(Run("def f(x):\n    return x", "1", avoid=frozenset(first.seeds)))
        assert len(first.seeds) == 2 and len(again.seeds) == 2 and not set(first.seeds) & set(again.seeds)
        assert again.output == first.output


def test_an_output_that_other_seeds_do_not_confirm_is_not_a_task():
    class SeedDependent:  # stands in for a program whose output flips with the hash seed, caught only later
        def map(self, jobs, timeout_s, budgets=None):
            return [ExecResult(True, "'b'" if job.avoid else "'a'", seeds=(1, 2)) for job in jobs]

    cfg = SelfPlayConfig(tasks=["deduction"], propose_per_task=1, n_propose=1, solve_per_task=0)
    buffers = Buffers.empty(["deduction"], cap=10)
    program = "def f(s):\n    return list({'a', 'b'})[0]"
    policy = ScriptedPolicy(lambda p, n: [f"```python\n{program}\n```\n```input\n1\n```"] * n)
    res = selfplay_step(policy, buffers, {"deduction": make_task("deduction")}, SeedDependent(), cfg,
                        RewardScheme.from_config(RewardsConfig()), Renderer("r1"), random.Random(0), step=1)
    (sample,) = res.samples
    assert sample.outcome == "invalid: non-deterministic" and len(buffers["deduction"]) == 0


def _abduction_step(executor, program, program_input, answer):
    cfg = SelfPlayConfig(tasks=["abduction"], propose_per_task=1, n_propose=1, n_mc=2, solve_per_task=0)
    buffers = Buffers.empty(["abduction"], cap=10)

    def script(prompt, n):
        if "create a new Python program" in prompt:
            return [f"```python\n{program}\n```\n```input\n{program_input}\n```"] * n
        return [f"<think>work back</think><answer>{answer}</answer>"] * n

    res = selfplay_step(ScriptedPolicy(script), buffers, {"abduction": make_task("abduction")}, executor, cfg,
                        RewardScheme.from_config(RewardsConfig()), Renderer("r1"), random.Random(0), step=1)
    return [s for s in res.samples if s.role == "propose"][0], buffers, res.metrics


def test_a_program_that_disagrees_with_itself_on_a_solvers_input_is_retracted(executor):
    program = "def f(x):\n    if x < 5:\n        return x * 2\n    return ''.join(set('abcdefghijklmnop'))"
    proposal, buffers, metrics = _abduction_step(executor, program, "1", "7")
    assert proposal.outcome == "invalid: non-deterministic on a solver's input" and proposal.reward == -1.0
    assert len(buffers["abduction"]) == 0 and metrics["retracted_tasks"] == 1


def test_a_solvers_input_that_iterates_in_seed_order_is_its_own_fault(executor):
    # a deterministic program; the solver answers with a set of strings, whose order differs between the runs
    program = "def f(xs):\n    out = []\n    for x in xs:\n        out.append(x * 2)\n    return out"
    answer = repr(set("abcdefghijklmnop"))
    proposal, buffers, metrics = _abduction_step(executor, program, "['a', 'b']", answer)
    assert len(buffers["abduction"]) == 1 and metrics["retracted_tasks"] == 0  # not the program's fault
    # but a verdict that depends on the seed measures nothing: no learnability reward, and the answers are not
    # trained on (neither counted right nor wrong)
    assert proposal.outcome.startswith("valid: no learnability") and proposal.reward == 0.0


class Unstable:
    """Validation is clean; every answer check disagrees with itself (as the proposer's program does on a seed it
    loops forever under), with one of the two runs timed out."""

    def map(self, jobs, timeout_s, budgets=None):
        return [ExecResult(False, error="non-deterministic", nondeterministic=True, timed_out=True)
                if isinstance(job, Check) else ExecResult(True, repr(job.inputs), seeds=(1, 2)) for job in jobs]


def test_a_timeout_in_one_run_is_no_excuse_for_the_program():
    cfg = SelfPlayConfig(tasks=["abduction"], propose_per_task=1, n_propose=1, n_mc=2, solve_per_task=0)
    buffers = Buffers.empty(["abduction"], cap=10)
    program = "def f(x):\n    return str(x) * 2"

    def script(prompt, n):
        if "create a new Python program" in prompt:
            return [f"```python\n{program}\n```\n```input\n12345\n```"] * n
        return ["<think>any</think><answer>7</answer>"] * n

    res = selfplay_step(ScriptedPolicy(script), buffers, {"abduction": make_task("abduction")}, Unstable(), cfg,
                        RewardScheme.from_config(RewardsConfig()), Renderer("r1"), random.Random(0), step=1)
    (proposal,) = res.samples
    assert proposal.outcome == "invalid: non-deterministic on a solver's input" and len(buffers["abduction"]) == 0


def test_ordinary_stdlib_programs_run_in_the_sandbox(checked):
    programs = [
        ("from dataclasses import dataclass\n\ndef f(x):\n    @dataclass\n    class P:\n        a: int\n"
         "        b: int = 2\n    return P(x).a + P(x).b", "1", "3"),
        ("from typing import NamedTuple\n\nclass P(NamedTuple):\n    a: int\n    b: int = 5\n\n"
         "def f(x):\n    return tuple(P(x))", "1", "(1, 5)"),
        ("from collections import namedtuple\n\ndef f(x):\n    P = namedtuple('P', 'a b', defaults=[0])\n"
         "    return P(x)._asdict()", "4", "{'a': 4, 'b': 0}"),
        ("import enum\n\nclass C(enum.Enum):\n    R = 1\n    G = 2\n\ndef f(x):\n    return C(x).name", "2", "'G'"),
        ("from functools import singledispatch\n\n@singledispatch\ndef g(x):\n    return 'any'\n\n"
         "@g.register\ndef _(x: int):\n    return 'int'\n\ndef f(x):\n    return g(x), g('s')", "1",
         "('int', 'any')"),
        ("import re\n\ndef f(s):\n    return re.sub(r'(?P<d>\\d)', lambda m: m.group('d') * 2, s)", "'a1b2'",
         "'a11b22'"),
    ]
    for code, inputs, expected in programs:
        res = checked.run(code, inputs)
        assert res.ok and res.output == expected, (code, res)
