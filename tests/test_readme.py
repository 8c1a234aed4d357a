"""Every ```python block of the README runs as written, and its command lines parse.

The blocks read ``data/demo``, where ``make demo`` writes the demo dataset. Each block runs in
a fresh namespace with the working directory set to a temporary folder whose ``data/demo`` is a
smaller demo dataset (same layout, fewer and shorter videos), so nothing in the blocks is
substituted. The ``python -m train`` and ``videomix-dali`` command lines with concrete
arguments are parsed by their command line's parser (not run).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from videomix_dali.tools.demo import make_demo_dataset

README = Path(__file__).resolve().parents[1] / "README.md"
_FENCE_RE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
_COMMAND_RE = re.compile(r"^(?:python -m train|videomix-dali) ")
_PLACEHOLDER_RE = re.compile(r"\.\.\.|\b[A-Z]{2,}\b")  # `python -m train ...`, MODE, DIR


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(1-based line of the opening fence, code) of each ```python block of ``text``."""
    return [
        (text.count("\n", 0, m.start()) + 1, m.group(2))
        for m in _FENCE_RE.finditer(text)
        if m.group(1) == "python"
    ]


def command_lines(text: str) -> list[str]:
    """The ``python -m train`` / ``videomix-dali`` command lines of ``text`` (inline code, and
    lines of bash blocks without their comments) that give arguments and no placeholders."""
    bash = [code for kind, code in _FENCE_RE.findall(text) if kind == "bash"]
    spans = re.findall(r"`([^`]+)`", _FENCE_RE.sub("", text))
    lines = [line.split(" #")[0] for code in bash for line in code.splitlines()]
    commands = [" ".join(c.split()) for c in spans + lines]
    bare = {"videomix-dali": 2, "python": 3}  # tokens of the program (and sub-command)
    return [
        c
        for c in commands
        if _COMMAND_RE.match(c)
        and len(c.split()) > bare[c.split()[0]]
        and not _PLACEHOLDER_RE.search(c)
    ]


TEXT = README.read_text(encoding="utf-8")
BLOCKS = python_blocks(TEXT)
COMMANDS = command_lines(TEXT)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder whose data/demo holds a small demo dataset."""
    root = tmp_path_factory.mktemp("readme")
    make_demo_dataset(
        root / "data" / "demo", videos_per_class=2, test_per_class=1, num_frames=12,
        size=(48, 64), progress=False,
    )  # fmt: skip
    return root


def test_the_readme_has_python_blocks_and_command_lines():
    assert len(BLOCKS) >= 2
    assert python_blocks("x\n```python\na = 1\n```\n```bash\nls\n```\n") == [(2, "a = 1\n")]
    assert "python -m train --recipe demo --compare none,spatial --seeds 3" in COMMANDS
    text = "`videomix-dali stream`, `videomix-dali show --out F.png --mode MODE`\n```bash\nls\n```"
    assert command_lines(text) == []
    text = "see `videomix-dali bench --recipe\nkinetics`\n```bash\nvideomix-dali a b c  # x\n```"
    assert command_lines(text) == ["videomix-dali bench --recipe kinetics", "videomix-dali a b c"]
    assert "videomix-dali demo-data data/demo" in COMMANDS


@pytest.mark.parametrize(("line", "code"), BLOCKS, ids=[f"README.md:{n}" for n, _ in BLOCKS])
def test_readme_python_block_runs(workdir, monkeypatch, line, code):
    monkeypatch.chdir(workdir)
    exec(compile(code, f"{README}:{line}", "exec"), {"__name__": "readme"})


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_line_parses(command):
    from train.__main__ import parser as train_parser
    from videomix_dali.tools.cli import build_parser

    argv = shlex.split(command)
    if argv[0] == "videomix-dali":
        build_parser().parse_args(argv[1:])
    else:
        train_parser().parse_args(argv[3:])
