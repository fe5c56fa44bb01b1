"""The command line's extras: a progress bar on a terminal, shell completion, package metadata."""

from __future__ import annotations

import io
import sys
import tomllib
from pathlib import Path

import pytest

from opensms_async._cli import main
from opensms_async._cli._progress import make_progress

ROOT = Path(__file__).resolve().parents[1]


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        """A terminal, as far as the progress display can tell."""
        return True


def test_a_terminal_gets_rich_progress_bar_with_an_eta() -> None:
    """On a terminal, with rich installed, progress is a bar with counts, failures and an ETA."""
    screen = Terminal()
    progress = make_progress(screen, 3, enabled=True)
    assert type(progress).__name__ == "_RichBar"
    for ok in (True, False, True):
        progress.advance(ok)
    progress.close()
    text = screen.getvalue()
    assert "3/3" in text and "1 failed" in text and "ETA" in text


def test_a_terminal_without_rich_gets_one_line_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without rich, the progress line is rewritten in place (carriage return), then ended."""
    monkeypatch.setitem(sys.modules, "rich.console", None)
    screen = Terminal()
    ticks = iter(range(100))
    progress = make_progress(screen, 2, enabled=True, clock=lambda: float(next(ticks)))
    progress.advance(True)
    progress.advance(True)
    progress.close()
    text = screen.getvalue()
    assert text.count("\r") == 2
    assert "sent 2/2 (100%), 0 failed, 1.0/s, ETA 0:00:00" in text
    assert text.endswith("\n")


def test_progress_off_a_terminal_is_a_line_every_tenth() -> None:
    """Not on a terminal, a plain line each tenth of the way (never per item)."""
    log = io.StringIO()
    ticks = iter(float(n) / 1000 for n in range(1000))
    progress = make_progress(log, 100, enabled=True, clock=lambda: next(ticks))
    for _ in range(100):
        progress.advance(True)
    progress.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[-1].startswith("sent 100/100 (100%)")


def test_completion_scripts(capsys: pytest.CaptureFixture[str]) -> None:
    """opensms completion bash|zsh prints a script that knows the commands and their options."""
    for shell in ("bash", "zsh"):
        assert main(["completion", shell]) == 0
        script = capsys.readouterr().out
        assert "send-many" in script and "--drop-rate" in script


def test_package_metadata() -> None:
    """pyproject declares the license (with its file), project URLs and the cli extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert (ROOT / project["license-files"][0]).read_text().startswith("MIT License")
    assert project["urls"]
    assert {"rich", "shtab"} <= {
        dep.split(">")[0] for dep in project["optional-dependencies"]["cli"]
    }
