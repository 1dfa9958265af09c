"""The package tree shows the architecture: no import cycles, and the pure parts import neither Ray nor vLLM.

    minazr/selfplay   the algorithm: tasks, buffers, rewards, advantages, prompts, parsing, the step   (pure)
    minazr/sandbox    the executor, its server process, static checks, literal values, the judge      (pure)
    minazr/contracts  what rollout/ and learner/ share with the driver: policy, stream, weight wire   (pure)
    minazr/driver, minazr/eval, minazr/bench, minazr/cli.py   the commands and what they run on
"""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("minazr", "rollout", "learner")
PURE = ("minazr.selfplay", "minazr.sandbox", "minazr.contracts")
BANNED = ("ray", "vllm")


def _modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(path: Path, name: str, modules: dict) -> set[str]:
    """Every module `path` imports, at the top or inside a function, resolved to the most specific module."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for a in node.names:
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base)
    return out


def _graph():
    """module -> the modules it imports, each with its parent packages (importing a.b.c runs a and a.b first)."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        deps = set()
        for imp in _imports(path, name, modules):
            while imp and imp not in modules:
                imp = imp.rpartition(".")[0]
            while imp:
                if imp != name and imp in modules:
                    deps.add(imp)
                imp = imp.rpartition(".")[0]
        graph[name] = deps
    return modules, graph


def test_no_import_cycles():
    _, graph = _graph()
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # a package's __init__ importing its own submodules (a registry) is not a cycle of ideas; anything else is
    real = [c for c in cycles if not any(all(o == p or o.startswith(p + ".") for o in c) for p in c)]
    assert not real, "import cycles: " + "; ".join(" -> ".join(c) for c in real)


def test_pure_parts_import_no_ray_vllm_or_driver():
    """Statically: no module under the pure folders names Ray, vLLM, rollout/, learner/ or the driver, even lazily."""
    modules, _ = _graph()
    bad = []
    for name, path in modules.items():
        if not name.startswith(PURE):
            continue
        for imp in _imports(path, name, modules):
            top = imp.split(".")[0]
            if top in BANNED + ("rollout", "learner") or imp.startswith(("minazr.driver", "minazr.eval",
                                                                          "minazr.bench", "minazr.cli")):
                bad.append(f"{name} imports {imp}")
    assert not bad, bad


def test_pure_parts_load_without_ray_or_vllm():
    """Dynamically: importing every pure module (and what it imports in turn) leaves Ray and vLLM unloaded."""
    names = sorted(n for n in _modules() if n.startswith(PURE) and not n.endswith("sandbox.server"))
    code = ("import importlib, sys\n"
            f"for n in {names!r}: importlib.import_module(n)\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {BANNED!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout


def _cycles_reported(tmp_path, monkeypatch, files: dict[str, str]) -> str:
    """Run the cycle check on a scratch tree of `files` (path -> source); the message it fails with, or ''."""
    for name, source in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source)
    for other in ("rollout", "learner"):
        (tmp_path / other).mkdir(exist_ok=True)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    try:
        test_no_import_cycles()
    except AssertionError as e:
        return str(e)
    return ""


def test_cycle_finder_finds_a_cycle(tmp_path, monkeypatch):
    """The checker itself can fail: two modules importing each other are reported; a registry is not."""
    found = _cycles_reported(tmp_path, monkeypatch, {
        "minazr/__init__.py": "", "minazr/a.py": "def f():\n    from minazr.b import g\n",
        "minazr/b.py": "from minazr import a\n",
        "minazr/sub/__init__.py": "from . import c\n",  # a registry: allowed
        "minazr/sub/c.py": "from minazr.sub import d\n", "minazr/sub/d.py": ""})
    assert "minazr.a -> minazr.b -> minazr.a" in found and "sub" not in found, found


def test_cycle_finder_sees_relative_imports_and_package_inits(tmp_path, monkeypatch):
    """A cycle through a package's __init__ (x imports y.z, so y/__init__ runs, and it imports x) is found."""
    found = _cycles_reported(tmp_path, monkeypatch, {
        "minazr/__init__.py": "", "minazr/x.py": "from .y import z\n",
        "minazr/y/__init__.py": "from minazr import x\n", "minazr/y/z.py": ""})
    assert "minazr.x -> minazr.y -> minazr.x" in found, found
