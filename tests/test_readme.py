"""Every Python block of README.md runs as written, against the simulator.

A block runs as a script in a child process, in an empty folder, with ``OPENSMS_API_KEY`` and
``OPENSMS_BASE_URL`` pointing at a simulator. A block after ``<!-- pytest -->`` is a test file,
run by pytest in that folder with no configuration of ours (so it must bring its own asyncio
mode). A block after ``<!-- fragment: why -->`` is a fragment on purpose: it is compiled (top-level
``await`` allowed) but not run. The shell blocks name only commands the CLI has.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from cli_helpers import clean_env

from opensms_async._cli import build_parser
from opensms_async.testing import RunningSimulator, run_simulator_in_thread

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[1] / "README.md"
_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>\w*)\s*$")
_MARK = re.compile(r"^\s*<!--\s*(?P<kind>fragment|pytest)\b.*-->\s*$")


@attrs.frozen
class Block:
    """A fenced code block of the README."""

    lang: str
    line: int
    code: str
    mark: str | None


def blocks(text: str) -> Iterator[Block]:
    """The fenced blocks of ``text``, each with the mark on the line before its fence, if any."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if fence is None or not fence["lang"]:
            index += 1
            continue
        indent = len(fence["indent"])
        previous = lines[index - 1] if index else ""
        mark = _MARK.match(previous)
        end = index + 1
        while not lines[end].strip().startswith("```"):
            end += 1
        code = "\n".join(line[indent:] for line in lines[index + 1 : end])
        yield Block(fence["lang"], index + 1, code + "\n", mark["kind"] if mark else None)
        index = end + 1


PYTHON = [b for b in blocks(README.read_text()) if b.lang == "python"]
SHELL = [b for b in blocks(README.read_text()) if b.lang == "bash"]


@pytest.fixture(scope="module")
def simulator() -> Iterator[RunningSimulator]:
    """One simulator for the README's blocks."""
    with run_simulator_in_thread(seed=2) as running:
        yield running


def test_the_readme_has_python_blocks() -> None:
    """The extractor finds the README's blocks (a broken extractor would test nothing)."""
    assert len(PYTHON) >= 8
    assert sum(b.mark == "pytest" for b in PYTHON) >= 1
    assert sum(b.mark == "fragment" for b in PYTHON) >= 1


@pytest.mark.parametrize("block", PYTHON, ids=lambda b: f"line{b.line}")
def test_python_block(block: Block, simulator: RunningSimulator, tmp_path: Path) -> None:
    """The block runs as written (or, marked a fragment, compiles)."""
    if block.mark == "fragment":
        compile(block.code, f"README.md:{block.line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        return
    env = clean_env({"OPENSMS_API_KEY": simulator.api_key, "OPENSMS_BASE_URL": simulator.base_url})
    if block.mark == "pytest":
        (tmp_path / "test_sms.py").write_text(block.code)
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_sms.py"]
    else:
        (tmp_path / "snippet.py").write_text(block.code)
        command = [sys.executable, "snippet.py"]
    result = subprocess.run(  # noqa: S603 - our own interpreter and the README's code
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"README.md line {block.line}:\n{result.stdout}{result.stderr}"
    if block.mark == "pytest":  # every test of the block ran and passed
        tests = block.code.count("\nasync def test_") + block.code.count("\ndef test_")
        assert f"{tests} passed" in result.stdout, result.stdout


def _cli_lines() -> Iterator[tuple[int, list[str]]]:
    for block in SHELL:
        for offset, line in enumerate(block.code.splitlines(), start=1):
            words = line.split("#")[0].split()
            if words[:1] == ["opensms"]:
                yield block.line + offset, words[1:]


def _command(parser: argparse.ArgumentParser, words: list[str]) -> argparse.ArgumentParser:
    """The parser of the command ``words`` name: down through groups and their actions
    (``subscription get``, ``inbound subscription create``); KeyError for an unknown command."""
    command = parser._subparsers._group_actions[0].choices[words[0]]  # type: ignore[union-attr,index]
    for word in words[1:]:
        actions = command._subparsers
        if actions is None:
            break
        command = actions._group_actions[0].choices[word]
    assert isinstance(command, argparse.ArgumentParser)
    return command


def test_shell_blocks_name_real_commands_and_options() -> None:
    """Every `opensms ...` line of the README names a command and options the CLI has."""
    parser = build_parser()
    found = 0
    for line, words in _cli_lines():
        known = set(_command(parser, words)._option_string_actions)
        for word in words:
            option = word.strip("[]").split("=")[0]
            if option.startswith("--"):
                assert option in known, f"README.md line {line}: {option} of opensms {words[0]}"
        found += 1
    assert found >= 15


def test_options_of_nested_actions_are_known() -> None:
    """An action two groups down (`opensms inbound subscription create`) is checked against
    its own options, not its group's; an action that does not exist is an error."""
    parser = build_parser()
    create = _command(
        parser, ["inbound", "subscription", "create", "URL", "--token", "T", "--concat", "true"]
    )
    assert {"--token", "--concat"} <= set(create._option_string_actions)
    poll = _command(parser, ["inbound", "poll", "NUMBER", "--max-batch-size", "5"])
    assert "--max-batch-size" in poll._option_string_actions
    with pytest.raises(KeyError):
        _command(parser, ["inbound", "subscription", "list"])
