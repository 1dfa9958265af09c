"""Documented commands run as written, so the README and docs/ cannot drift from the code.

Every line of a ```bash block in README.md or docs/ (any depth) is a command a user is meant to copy. Each one must
match exactly one rule below, and the slow tests run it from a scratch copy of the checkout (its `.venv` a link to
this one), through bash, exactly as printed with only arguments appended to make it cheap (fewer steps, items).
Two parts are checked rather than run, because running them inside the suite would rebuild the environment the
suite runs in: the quickstart's install prefix (`python3 -m venv .venv && .venv/bin/pip install ...`) must be the
very prefix of the test command, and the test command must be the one `.ci/run` executes on every submission.
Commands in tables use placeholders (RUN_DIR); they are parsed by the CLI's own argument parser instead.
"""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import TINY

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
INSTALL = "python3 -m venv .venv && .venv/bin/pip install -e '.[cpu,test]' && "
TEST_COMMAND = INSTALL + ".venv/bin/minazr setup && .venv/bin/python -m pytest"
CHEAP_TRAIN = ["train.steps=1", "eval.every=1", "eval.canary_items=2", "eval.max_tokens=16",
               "eval.canary_benchmarks=[gsm8k, cruxeval-i]", "selfplay.tasks=[deduction, math]", *TINY]


@dataclass
class Doc:
    file: str
    line: int
    command: str

    def __str__(self):
        return f"{self.file}:{self.line}: {self.command}"


def documented_commands() -> list[Doc]:
    found = []
    for path in DOCS:
        inside, pending = False, None
        for n, raw in enumerate(path.read_text().splitlines(), 1):
            line = raw.strip()
            if line.startswith("```"):
                inside = line == "```bash" if not inside else False
                continue
            if not inside or (not line and pending is None) or line.startswith("#"):
                continue
            start = pending or Doc(str(path.relative_to(REPO)), n, "")
            start.command = (start.command + " " + line.removesuffix("\\").strip()).strip()
            pending = start if line.endswith("\\") else None
            if pending is None:
                found.append(start)
    return found


# rule name -> pattern of the documented command (the whole line must match)
RULES = {
    "test command": re.escape(TEST_COMMAND),
    "quickstart train": re.escape(INSTALL) + r"\.venv/bin/minazr setup && \.venv/bin/minazr train --config "
                                             r"configs/default\.yaml",
    "fast tests": r"\.venv/bin/python -m pytest -m \"not slow\"",
    "0.5B train": r"\.venv/bin/minazr setup --model qwen2\.5-coder-0\.5b-instruct && "
                  r"\.venv/bin/minazr train --config configs/cpu_qwen2\.5-coder-0\.5b\.yaml",
    "eval": r"\.venv/bin/minazr eval .*",
    "tensorboard": r"\.venv/bin/tensorboard --logdir \S+",
    "ray start head": r"(\S+=\S+ )*\.venv/bin/ray start --head.*",
    "ray job submit": r"(\S+=\S+ )*\.venv/bin/ray job submit .*",
    "ray stop": r"(\S+=\S+ )*\.venv/bin/ray stop.*",
}


def _rule(doc: Doc) -> str:
    names = [name for name, pattern in RULES.items() if re.fullmatch(pattern, doc.command)]
    assert len(names) == 1, f"{doc}: matches {names or 'no rule'} (add a rule so the suite runs it)"
    return names[0]


def test_every_documented_command_has_exactly_one_rule():
    docs = documented_commands()
    assert len(docs) >= 5, docs
    for doc in docs:
        _rule(doc)
    assert {_rule(d) for d in docs if d.file == "README.md"} >= {"test command", "quickstart train"}


def test_the_readme_test_command_is_what_ci_runs():
    ci = (REPO / ".ci" / "run").read_text()
    (readme,) = [d for d in documented_commands() if _rule(d) == "test command" and d.file == "README.md"]
    assert readme.command in ci.splitlines()


PLACEHOLDER = re.compile(r"\b[A-Z][A-Z_]{2,}\b")  # RUN_DIR, DIR, PATH, HEAD_IP: written by the reader


def mentioned_commands() -> list[tuple[str, str]]:
    """Every `minazr ...` the docs show anywhere (code spans, tables, any fenced block), each part of a && chain;
    usage synopses (`minazr bench [--workers LIST]`) aside."""
    found = []
    for path in DOCS:
        fenced = False
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip().startswith("```"):
                fenced = not fenced
                continue
            texts = [line] if fenced else re.findall(r"`([^`]+)`", line)
            for text in texts:
                for part in text.split("&&"):
                    part = re.split(r" [>|] | #", part)[0]  # a redirection, a pipe or a comment ends it
                    m = re.match(r"\s*(?:\S+=\S+\s+)*(?:\.venv/bin/)?minazr\s+(\S.*)$", part)
                    if m and "[" not in m.group(1) and "..." not in m.group(1) \
                            and not m.group(1).startswith(("-", "train:", "setup:", "scale:")):
                        found.append((f"{path.relative_to(REPO)}:{n}", "minazr " + m.group(1).strip()))
    return found


def test_every_command_the_docs_mention_parses_and_its_config_loads():
    """Commands too long to run here (hours of training, a full evaluation) and those with placeholders are still
    checked as written: the CLI's own parser accepts them, and their --config file and overrides load."""
    from minazr.cli import build_parser
    from minazr.driver.config import load_config

    parser, commands = build_parser(), mentioned_commands()
    assert len(commands) >= 20, commands
    for where, cmd in commands:
        try:
            args = parser.parse_args(shlex.split(cmd)[1:])
        except SystemExit as e:
            raise AssertionError(f"{where}: `{cmd}` does not parse") from e
        if args.command in ("setup", "scale"):  # no config: scale reads the run's own
            continue
        config = args.config if args.config and not PLACEHOLDER.search(args.config) else None
        overrides = [o for o in args.overrides if not PLACEHOLDER.search(o.partition("=")[2])]
        assert not [o for o in args.overrides if "=" not in o], f"{where}: `{cmd}`: an argument that is no override"
        try:
            load_config(REPO / config if config else None, overrides)
        except Exception as e:
            raise AssertionError(f"{where}: `{cmd}`: {e}") from e


# ---------------------------------------------------------------- running them


@pytest.fixture
def workspace(tmp_path):
    """A copy of the checkout as a user has it after the quickstart's install: `.venv` links to this one's."""
    work = tmp_path / "work"
    shutil.copytree(REPO, work, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "__pycache__", "*.egg-info",
                                                              ".pytest_cache", ".hypothesis"))
    venv = REPO / ".venv"
    if not (venv / "bin" / "minazr").exists():
        pytest.fail(f"{venv} is missing: run the README's test command, which creates it")
    (work / ".venv").symlink_to(venv)
    return work


def _commands(rule: str) -> list[Doc]:
    return [d for d in documented_commands() if _rule(d) == rule]


def _run(doc: Doc, work: Path, extra=(), timeout=900, env=None) -> subprocess.CompletedProcess:
    command = doc.command.removeprefix(INSTALL) + "".join(" " + shlex.quote(a) for a in extra)
    res = subprocess.run(["bash", "-c", command], cwd=work, capture_output=True, text=True, timeout=timeout,
                         env=os.environ if env is None else env)
    assert res.returncode == 0, f"{doc} (ran: {command}) exited {res.returncode}:\n{res.stderr[-3000:]}"
    return res


@pytest.mark.slow
def test_quickstart_then_eval_and_tensorboard(workspace):
    """The quickstart run (one step, evaluated), then every documented eval and TensorBoard command on its output."""
    (train,) = [d for d in _commands("quickstart train") if d.file == "README.md"]
    res = _run(train, workspace, CHEAP_TRAIN)
    run = workspace / "runs" / "latest"
    assert "minazr train: done" in res.stdout and "What this run shows:" in res.stdout
    assert "Next:" in res.stdout and ".venv/bin/minazr eval --model" in res.stdout
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [-1, 0]  # the canary before training, then the step
    assert metrics[0]["eval/net_vs_base/gsm8k"] == 0 and (run / "eval" / "baseline" / "gsm8k.jsonl").is_file()
    m = metrics[1]
    for key in ("solve/accuracy/deduction", "propose/valid_rate/math", "buffer/math", "gen/tokens_per_s",
                "time/weight_sync", "learner/grad_norm", "version_lag/max", "length/solve/deduction",
                "eval/gsm8k", "eval/cruxeval-i", "eval/net_vs_base/gsm8k", "time/eval"):
        assert key in m, key
    assert m["version"] == 1 and m["time/weight_sync"] > 0
    assert (run / "samples.jsonl").read_text().count('"role"') >= 4
    ckpt = run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()
    assert json.loads((ckpt / "driver.json").read_text())["step"] == 1
    assert (ckpt / "model" / "config.json").exists()

    for doc in _commands("eval"):
        out = workspace / "runs" / f"eval-{doc.line}"
        res = _run(doc, workspace, ["--limit", "2", "--benchmarks", "gsm8k,cruxeval-o", "--out", str(out),
                                    "eval.max_tokens=16", *TINY])
        comparison = json.loads((out / "comparison.json").read_text())
        for scores in comparison.values():
            assert [(b, s["n"]) for b, s in scores.items()] == [("gsm8k", 2), ("cruxeval-o", 2)], doc

    for doc in _commands("tensorboard"):
        _serves(doc, workspace)

    rows = [json.loads(line) for line in (run / "eval" / "step_000000" / "gsm8k.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and {"id", "prompt", "completion", "extracted", "correct"} <= set(rows[0])


def _serves(doc: Doc, work: Path) -> None:
    """A server command (TensorBoard) runs as written on a free port until it says where it serves, then stops."""
    command = doc.command + " --port 0"
    proc = subprocess.Popen(["bash", "-c", command], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        deadline, seen = time.monotonic() + 120, []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            seen.append(line)
            if "http://" in line:
                return
        raise AssertionError(f"{doc}: no serving address within 120 s:\n{''.join(seen)[-2000:]}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.mark.slow
def test_fast_subset_command_selects_the_fast_tests(workspace):
    """The development loop's command, collected only (running it here would run the suite inside itself)."""
    for doc in _commands("fast tests"):
        res = _run(doc, workspace, ["--collect-only", "-q"], timeout=300)
        counts = re.search(r"(\d+)/(\d+) tests collected \((\d+) deselected\)", res.stdout)
        assert counts and 0 < int(counts.group(3)) < int(counts.group(2)), res.stdout[-500:]


@pytest.mark.slow
def test_the_05b_next_step_runs_one_step(workspace):
    """The next command the README and the end of every run suggest: the 0.5B coder config, one tiny step."""
    for doc in _commands("0.5B train"):
        # `minazr setup --model qwen...` runs as written; the step runs the 0.5B config with the 135M model (a
        # 0.5B step costs a minute more): what this checks is the command, the config and the run directory
        res = _run(doc, workspace, ["train.steps=1", "eval.every=0", "model.name=smollm2-135m-instruct", *TINY],
                   timeout=1200)
        assert "minazr train: done" in res.stdout
        run = workspace / "runs" / "qwen_cpu"  # the config's run.out_dir
        assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [0]
        import yaml

        saved = yaml.safe_load((run / "config.yaml").read_text())
        assert saved["learner"]["lr"] == 1.0e-6 and saved["model"]["name"] == "smollm2-135m-instruct", saved


@pytest.mark.slow
def test_cluster_commands_start_submit_and_stop(workspace):
    """docs/cluster.md's sequence as written: start a head node, submit `minazr train` as a Ray job with
    `--working-dir .` (the uploaded copy leaves out .venv, hence the absolute interpreter path), stop Ray."""
    starts, submits, stops = _commands("ray start head"), _commands("ray job submit"), _commands("ray stop")
    assert starts and submits and stops
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # the commands name their addresses
    try:
        _run(starts[0], workspace, timeout=300, env=env)
        for doc in submits:
            res = _run(doc, workspace, CHEAP_TRAIN, timeout=1200, env=env)
            assert "minazr train: done" in res.stdout + res.stderr, (res.stdout[-3000:], res.stderr[-3000:])
            assert re.search(r"Job '[^']+' succeeded", res.stdout + res.stderr), res.stdout[-2000:]
            assert "What this run shows:" in res.stdout + res.stderr  # the job ran in Ray's copy of the checkout
        for doc in stops:
            _run(doc, workspace, timeout=300, env=env)
    finally:
        subprocess.run([str(REPO / ".venv" / "bin" / "ray"), "stop", "--force"], capture_output=True, timeout=300,
                       env=env)
