"""``opensms completion SHELL``: a shell completion script, generated from the parser by shtab."""

from __future__ import annotations

import argparse

from ._base import EXIT_FAILED, CommandError, Commands
from ._output import Output

__all__ = ["register"]

SHELLS = ("bash", "zsh", "tcsh")


def register(commands: Commands) -> None:
    """Add ``completion``."""
    completion = commands.add(
        "completion",
        run=_completion,
        help="print a shell completion script",
        description="Print a completion script for SHELL (needs the cli extra: "
        "pip install 'opensms-async[cli]'). Bash: "
        "`opensms completion bash > ~/.local/share/bash-completion/completions/opensms`; "
        "zsh: write it as _opensms in a folder of your fpath.",
    )
    completion.add_argument("shell", choices=SHELLS)


async def _completion(args: argparse.Namespace, out: Output) -> int:
    try:
        import shtab
    except ImportError:
        raise CommandError(
            "completion needs shtab: pip install 'opensms-async[cli]'", EXIT_FAILED
        ) from None
    # The whole parser, handed over by _main (set_defaults): no import of the module above.
    out.line(shtab.complete(args.root_parser, shell=args.shell).rstrip("\n"))
    return 0
