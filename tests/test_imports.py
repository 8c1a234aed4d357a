"""The import graph of the library and the app: no cycle, and the library never imports the app.

Every ``import`` statement counts, also those inside functions (a lazy import that closes a
cycle is still a cycle).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("videomix_dali", "train")


def module_files() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the library and the app."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imported_names(name: str, path: Path) -> set[str]:
    """Dotted names ``name`` imports (relative imports resolved; ``from X import y`` gives
    ``X.y``, which is a module or an attribute of ``X``)."""
    is_package = path.name == "__init__.py"
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + is_package]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of the library and the app it imports."""
    modules = module_files()
    return {
        name: {n for n in imported_names(name, path) if n in modules and n != name}
        for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the DFS stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_library_and_the_app_import_without_cycles():
    graph = import_graph()
    assert {"videomix_dali.loading.videos", "train.trainer", "train.run"} <= set(graph)
    assert "train.evaluate" in graph["train.run"]  # the graph really sees edges
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_library_never_imports_the_app():
    offenders = [
        f"{name} imports {n}"
        for name, path in module_files().items()
        if name.startswith("videomix_dali")
        for n in imported_names(name, path)
        if n == "train" or n.startswith("train.")
    ]
    assert offenders == []


def test_the_names_users_reach_for():
    import videomix_dali
    from videomix_dali import Recipe, VideoLoader, VideoMix, load_recipe

    assert VideoMix.__module__ == "videomix_dali.mix.op" and isinstance(load_recipe("demo"), Recipe)
    assert "Args:" in VideoLoader.__doc__ and "**overrides" in VideoLoader.__doc__
    assert set(videomix_dali.__all__) >= {"VideoLoader", "VideoMix", "Recipe", "read_index"}


def test_mixing_and_recipes_work_where_dali_is_not_installed():
    """VideoMix on plain arrays, the recipes and the hand-off need no DALI (a training loop of
    its own, or the GPU kernel tests on a machine without DALI)."""
    import subprocess
    import sys

    code = """
import sys
sys.modules["nvidia.dali"] = None  # importing it now raises ImportError
import numpy as np
import videomix_dali
from videomix_dali import VideoMix, load_recipe
import videomix_dali.handoff
mix = VideoMix("spatial", num_classes=3, seed=0)
x, y = mix(np.zeros((2, 3, 4, 8, 8), np.float32), np.array([0, 2]))
assert x.shape == (2, 3, 4, 8, 8) and y.shape == (2, 3), (x.shape, y.shape)
assert load_recipe("demo").name == "demo"
try:
    videomix_dali.VideoLoader
except ImportError as exc:
    print("loader needs DALI:", exc)
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("loader needs DALI:")


def _offenders(select, forbidden) -> list[str]:
    """``module imports name`` for the modules ``select`` picks and the names ``forbidden``
    flags."""
    return [
        f"{name} imports {n}"
        for name, path in module_files().items()
        if select(name)
        for n in imported_names(name, path)
        if forbidden(n)
    ]


def test_mixing_is_pure_array_code_without_dali_or_matplotlib():
    mix = _offenders(
        lambda name: name.startswith("videomix_dali.mix"),
        lambda n: n.startswith(("nvidia.dali", "matplotlib")),
    )
    assert mix == []


def test_the_library_core_never_imports_its_tools():
    core = _offenders(
        lambda name: (
            name.startswith("videomix_dali") and not name.startswith("videomix_dali.tools")
        ),
        lambda n: n.startswith("videomix_dali.tools"),
    )
    assert core == []


def test_the_source_layer_knows_nothing_of_graphs_samplers_or_loaders():
    later = ("graph", "sampling", "mix", "loader", "features", "handoff", "tools")
    below = _offenders(
        lambda name: name.startswith("videomix_dali.source"),
        lambda n: n.startswith("videomix_dali.") and n.split(".")[1] in later,
    )
    assert below == []


#: Branches on the backend outside graph/ (and the tools), each for a reason that is not the
#: graph's shape: which device a name means, which files a backend can decode, which CUDA
#: device a pipeline gets, whose memory a batch must fit in.
BACKEND_BRANCHES_OUTSIDE_THE_GRAPH = {
    "videomix_dali/runtime.py": 2,  # "auto" resolved; free memory of the host or the GPU
    "videomix_dali/loading/videos.py": 4,  # files each backend decodes (2); CUDA device; memory
    "videomix_dali/loading/features.py": 1,  # CUDA device id
}


def test_only_the_graph_branches_on_the_backend():
    import re

    branch = re.compile(r"""device\s*[!=]=\s*['"](cpu|gpu|mixed)['"]""")
    found = {}
    for path in sorted((ROOT / "videomix_dali").rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[1] in ("graph", "tools"):
            continue
        if count := len(branch.findall(path.read_text())):
            found[rel.as_posix()] = count
    assert found == BACKEND_BRANCHES_OUTSIDE_THE_GRAPH
