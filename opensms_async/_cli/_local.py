"""``opensms simulate`` and ``opensms demo``: everything on this machine, no account needed."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import urlsplit

from ._base import (
    EXIT_USAGE,
    CommandError,
    Commands,
    listening,
    port,
    rate,
    until_stopped,
)
from ._output import Output

__all__ = ["register"]

DEFAULT_SIM_PORT = 8750


def register(commands: Commands) -> None:
    """Add ``simulate`` and ``demo``."""
    simulate = commands.add(
        "simulate",
        run=_simulate,
        help="run the OpenSMS simulator (no account needed)",
        description="Serve a simulator of the OpenSMS API on this machine until Ctrl-C. It "
        "prints the base URL and the API key it accepts (sim-api-key unless --api-key or "
        "--sim-api-key says otherwise). Numbers ending in 99 fail (DeliveryImpossible); "
        "callbacks go to the subscription's URL, or to --callback-target.",
    )
    simulate.add_argument("--host", default="127.0.0.1", help="address to listen on")
    simulate.add_argument(
        "--port", type=port, default=DEFAULT_SIM_PORT, help="port to listen on (0: any free one)"
    )
    simulate.add_argument(
        "--sim-api-key",
        help="the API key it accepts (default: the global --api-key if given, else sim-api-key)",
    )
    simulate.add_argument("--seed", type=int, help="seed of its randomness (default: random)")
    simulate.add_argument(
        "--drop-rate", type=rate, default=0.0, help="share of callbacks dropped, 0 to 1"
    )
    simulate.add_argument(
        "--duplicate-rate", type=rate, default=0.0, help="share of callbacks sent twice, 0 to 1"
    )
    simulate.add_argument(
        "--callback-target",
        metavar="URL",
        help="post callbacks here instead of the subscription's https URL, e.g. a local "
        "receiver: http://127.0.0.1:8080/sms/callback",
    )

    demo = commands.add(
        "demo",
        run=_demo,
        help="the whole story on embedded defaults (no account, no network)",
        description="Run the simulator, a receiver and a SQLite store on 127.0.0.1; send to a "
        "few numbers, lose some callbacks on purpose and watch the tracker recover them.",
    )
    demo.add_argument("--seed", type=int, default=7, help="seed of the simulated randomness")
    demo.add_argument(
        "--drop-rate", type=rate, default=0.3, help="share of callbacks dropped, 0 to 1"
    )


def _refuse(args: argparse.Namespace, command: str, reason: str, *names: str) -> None:
    for name in names:
        if getattr(args, name.lstrip("-").replace("-", "_"), None):
            raise CommandError(f"{command} takes no {name}: {reason}", EXIT_USAGE)


def _sim_settings(args: argparse.Namespace) -> dict[str, Any]:
    _refuse(
        args, "simulate", "it serves its own (use --host and --port)", "--base-url", "--token-url"
    )
    if args.sim_api_key and args.api_key and args.sim_api_key != args.api_key:
        raise CommandError("--sim-api-key and --api-key differ: give one of them", EXIT_USAGE)
    settings: dict[str, Any] = {
        "callback_drop_rate": args.drop_rate,
        "callback_duplicate_rate": args.duplicate_rate,
        "callback_target": _target(args.callback_target),
    }
    key = args.sim_api_key or args.api_key
    if key is not None:
        settings["api_key"] = key
    if args.client_id:
        settings["client_id"] = args.client_id
    if args.client_secret:
        settings["client_secret"] = args.client_secret
    if args.seed is not None:
        settings["seed"] = args.seed
    return settings


def _target(url: str | None) -> str | None:
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        raise CommandError(
            f"--callback-target must be an http(s) URL such as "
            f"http://127.0.0.1:8080/sms/callback, not {url!r}",
            EXIT_USAGE,
        )
    return url


async def _simulate(args: argparse.Namespace, out: Output) -> int:
    from ..testing import RunningSimulator, Simulator

    simulator = Simulator(**_sim_settings(args))
    async with listening(simulator.app, args.host, args.port) as server:
        running = RunningSimulator(simulator, server)
        _announce(out, running)
        return await until_stopped()


def _announce(out: Output, sim: Any) -> None:
    simulator = sim.simulator
    target = simulator.callback_target or "the subscription's URL"
    data = {
        "base_url": sim.base_url,
        "api_key": sim.api_key,
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
        "token_url": sim.token_url,
        "seed": simulator.seed,
        "callback_drop_rate": simulator.callback_drop_rate,
        "callback_target": simulator.callback_target,
    }
    out.result(
        data,
        [
            f"simulator   {sim.base_url}  (seed {simulator.seed}, "
            f"drops {simulator.callback_drop_rate:.0%} of callbacks)",
            f"API key     {sim.api_key}",
            f"OAuth       client id {sim.client_id}, secret {sim.client_secret}, "
            f"token URL {sim.token_url}",
            f"callbacks   to {target}",
            "failures    numbers ending in 99 end DeliveryImpossible; "
            "in 98 pass through DeliveryUncertain",
            "",
            "In another shell:",
            f"  export OPENSMS_BASE_URL={sim.base_url} OPENSMS_API_KEY={sim.api_key}",
            '  opensms send --from tel:+3212345678 --to +33612345670 "Hello"',
            "Ctrl-C stops it.",
        ],
    )


async def _demo(args: argparse.Namespace, out: Output) -> int:
    from .._demo import run_demo

    _refuse(
        args,
        "demo",
        "it runs its own simulator",
        "--api-key",
        "--base-url",
        "--client-id",
        "--client-secret",
        "--token-url",
    )
    if out.json:
        raise CommandError("demo prints a story, not JSON: leave out --json", EXIT_USAGE)
    return await run_demo(seed=args.seed, drop_rate=args.drop_rate, out=out.out)
