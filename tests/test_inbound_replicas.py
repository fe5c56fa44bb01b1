"""Three inbound receiver processes on one Redis share dedupe, reassembly and one log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis_server import free_port

from opensms_async.stores.inbound import RedisInboundStore

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
TOKEN = "replica-in-token-1"
REPLICAS = 3
MESSAGES = 40
STARTUP_TIMEOUT = 60.0


@contextlib.contextmanager
def replicas(store_url: str, workdir: Path) -> Iterator[list[tuple[str, Path]]]:
    """Start the replica processes; their base URLs and stdout files. Killed on the way out."""
    started: list[tuple[subprocess.Popen[bytes], str, Path]] = []
    try:
        for n in range(REPLICAS):
            port = free_port()
            out = workdir / f"replica-{n}.stdout"
            with open(out, "wb") as stdout, open(workdir / f"replica-{n}.stderr", "wb") as err:
                process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
                    [sys.executable, str(HERE / "inbound_replica.py"), store_url, str(port), TOKEN],
                    stdout=stdout,
                    stderr=err,
                )
            started.append((process, f"http://127.0.0.1:{port}", out))
        yield [(url, out) for _, url, out in started]
    finally:
        for process, _, _ in started:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)


async def healthy(http: httpx.AsyncClient, url: str) -> None:
    """Wait (bounded) until a replica answers its health route."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if (await http.get(url + "/healthz")).status_code == 200:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"replica {url} did not become healthy")


def posts(rng: random.Random) -> list[tuple[dict[str, Any], str]]:
    """Every part of MESSAGES messages (half of them three parts long), each posted two or three
    times, shuffled; with the text each message must come out as."""
    bodies: list[dict[str, Any]] = []
    texts: list[str] = []
    for n in range(MESSAGES):
        sender = f"3247{n:07d}"
        if n % 2:
            texts.append(f"short {n}")
            bodies.append(_body(f"s-{n}", sender, f"short {n}"))
            continue
        pieces = [f"<{n}.{p}>" for p in (1, 2, 3)]
        texts.append("".join(pieces))
        for p, piece in enumerate(pieces, start=1):
            udh = {"udhMessageId": n % 256, "concatPart": p, "concatTotal": 3}
            bodies.append(_body(f"l-{n}-{p}", sender, piece, **udh))
    copies = [body for body in bodies for _ in range(rng.choice((2, 3)))]
    rng.shuffle(copies)
    return [(body, "") for body in copies] + [({}, text) for text in texts]


def _body(message_id: str, sender: str, text: str, **udh: int) -> dict[str, Any]:
    message = {"messageId": message_id, "senderAddress": sender, "destinationAddress": "3200",
               "message": text, **udh}  # fmt: skip
    return {"InboundSmsMessage": message}


def printed(out: Path) -> list[dict[str, Any]]:
    """The complete JSON lines a replica printed."""
    return [json.loads(line) for line in out.read_text().split("\n")[:-1] if line.strip()]


@contextlib.asynccontextmanager
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """A client for the replicas (no proxies from the environment)."""
    async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
        yield http


async def test_three_replicas_on_one_redis_log_each_message_once(
    redis_url: str, tmp_path: Path
) -> None:
    """Parts and duplicates spread over 3 processes at once: one whole message each, and every
    replica's messages() yields each exactly once."""
    plan = posts(random.Random(7))
    bodies = [body for body, _ in plan if body]
    expected = sorted(text for _, text in plan if text)
    with replicas(redis_url, tmp_path) as running:
        async with client() as http:
            await asyncio.gather(*(healthy(http, url) for url, _ in running))
            semaphore = asyncio.Semaphore(24)

            async def post(index: int, body: dict[str, Any]) -> int:
                url = running[index % REPLICAS][0] + "/sms/inbound"
                async with semaphore:
                    answer = await http.post(
                        url, json=body, headers={"Authorization": f"Bearer {TOKEN}"}
                    )
                return answer.status_code

            statuses = await asyncio.gather(*(post(i, b) for i, b in enumerate(bodies)))
        assert set(statuses) == {204}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(  # noqa: ASYNC110 - files written by children
            len(printed(out)) < MESSAGES for _, out in running
        ):
            await asyncio.sleep(0.1)
        seen = [printed(out) for _, out in running]
    async with RedisInboundStore.from_url(redis_url) as store:
        logged = await store.read_messages(None, limit=10_000)
    assert sorted(m.text for m in logged) == expected
    assert all(m.complete for m in logged)
    for lines in seen:
        assert sorted(line["text"] for line in lines) == expected
        assert [line["cursor"] for line in lines] == [m.cursor for m in logged]
