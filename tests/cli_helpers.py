"""Running the real ``opensms`` command in tests: in a child process, or ``main()`` in this one.

Both strip the ``OPENSMS_*`` variables of the caller's environment, so a test sees only what it
sets. ``assert_one_error`` is what every error path must satisfy: exit code, exactly one
``error: ...`` line on stderr, and no traceback anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from opensms_async._cli import main
from opensms_async.testing import RunningSimulator

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60.0


def sim_args(sim: RunningSimulator) -> list[str]:
    """The global options that point the CLI (a child or ``main()``) at a simulator."""
    return ["--api-key", sim.api_key, "--base-url", sim.base_url]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without OPENSMS_* variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENSMS_")}
    env["PYTHONUNBUFFERED"] = "1"
    return {**env, **(extra or {})}


def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """``python -m opensms_async ARGS`` to completion, its output captured."""
    return subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "opensms_async", *args],
        capture_output=True,
        text=True,
        env=clean_env(env),
        cwd=cwd or ROOT,
        timeout=timeout,
        check=False,
    )


def spawn_cli(
    *args: str, out: Path, err: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """``python -m opensms_async ARGS`` in the background, stdout and stderr in files."""
    with out.open("wb") as stdout, err.open("wb") as stderr:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-m", "opensms_async", *args],
            stdout=stdout,
            stderr=stderr,
            env=clean_env(env),
            cwd=cwd or ROOT,
        )


@contextlib.contextmanager
def background(
    *args: str, out: Path, err: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """:func:`spawn_cli` for the length of a block; killed at the end if still running."""
    process = spawn_cli(*args, out=out, err=err, env=env, cwd=cwd)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def wait_for_text(path: Path, text: str, process: subprocess.Popen[bytes], timeout: float) -> str:
    """The content of ``path`` once it holds ``text`` (AssertionError at timeout or exit)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (content := text_or_exit(path, text, process)) is not None:
            return content
        time.sleep(0.05)
    raise never_appeared(path, text)


async def wait_for_text_async(
    path: Path, text: str, process: subprocess.Popen[bytes], timeout: float
) -> str:
    """:func:`wait_for_text` without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (content := text_or_exit(path, text, process)) is not None:
            return content
        await asyncio.sleep(0.05)
    raise never_appeared(path, text)


def text_or_exit(path: Path, text: str, process: subprocess.Popen[bytes]) -> str | None:
    """What ``path`` holds if it holds ``text``; None to look again; AssertionError once the
    process has exited without writing it."""
    content = read_text(path)
    if text in content:
        return content
    if process.poll() is not None:
        raise never_appeared(path, text)
    return None


def never_appeared(path: Path, text: str) -> AssertionError:
    """The failure of a wait for ``text`` in ``path``, showing what it holds."""
    return AssertionError(f"{text!r} never appeared in {path}: {read_text(path)}")


def read_text(path: Path) -> str:
    """What a child wrote to ``path`` so far ('' before it exists)."""
    return path.read_text(errors="replace") if path.exists() else ""


def interrupt(process: subprocess.Popen[bytes], timeout: float = 60.0) -> int:
    """Ctrl-C (SIGINT) and the exit code (the timeout a hang guard: a loaded machine took
    over 20 s to run a child's shutdown)."""
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=timeout)


def assert_one_error(code: int, stdout: str, stderr: str, *, expected: int, says: str) -> str:
    """Exit ``expected``, one line ``error: ...`` containing ``says`` on stderr, no traceback."""
    assert "Traceback" not in stdout + stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert says in lines[0], stderr
    assert code == expected, (code, stderr)
    return lines[0]


def assert_cli_error(result: subprocess.CompletedProcess[str], *, expected: int, says: str) -> str:
    """:func:`assert_one_error` for a finished child process."""
    return assert_one_error(
        result.returncode, result.stdout, result.stderr, expected=expected, says=says
    )


def main_error(
    argv: Sequence[str], capsys: pytest.CaptureFixture[str], *, expected: int, says: str
) -> str:
    """Run ``main(argv)`` here and check it failed with one error line."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return assert_one_error(code, captured.out, captured.err, expected=expected, says=says)
