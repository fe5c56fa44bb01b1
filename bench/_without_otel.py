"""Run a Python script with OpenTelemetry not importable: what a user without the otel extra has.

    python bench/_without_otel.py SCRIPT [ARGS...]

Any ``import opentelemetry...`` raises ``ModuleNotFoundError``, as on a machine where the API is
not installed; then ``SCRIPT`` runs as ``__main__`` with ``ARGS``. ``bench_otel.py`` starts its
"no API" servers and loads through it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType


class Blocked(importlib.abc.MetaPathFinder):
    """A finder that refuses every ``opentelemetry`` module before any other finder is asked."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        """Refuse ``opentelemetry`` and its submodules; leave anything else to the others."""
        if fullname.partition(".")[0] == "opentelemetry":
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def block() -> None:
    """Make ``opentelemetry`` unimportable in this process from now on."""
    if any(name.partition(".")[0] == "opentelemetry" for name in sys.modules):
        raise RuntimeError("opentelemetry is imported already: too late to block it")
    sys.meta_path.insert(0, Blocked())


def main() -> None:
    """Block OpenTelemetry, then run ``sys.argv[1]`` as ``__main__`` with the rest as its argv."""
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path[0] = str(Path(script).resolve().parent)  # as `python SCRIPT` would have it
    block()
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
