"""``opensms demo``'s two-way half: the reply comes out once and whole, and the summary adds up.

Also the simulator's ``inject_inbound(duplicate_parts=...)``, which the demo relies on to post
exactly one part twice whatever the seed.
"""

from __future__ import annotations

import io
import random
import re

import pytest

from opensms_async._demo import run_demo
from opensms_async._demo_inbound import REPLY, chosen_parts
from opensms_async._inbound import InboundSubscription
from opensms_async.testing._inbound import InboundSettings, _posts
from opensms_async.testing._inbound_wire import InboundPart, InjectedInbound


def numbers(pattern: str, text: str) -> tuple[int, ...]:
    """The integers ``pattern``'s groups capture in ``text``."""
    match = re.search(pattern, text)
    assert match is not None, (pattern, text)
    return tuple(int(group) for group in match.groups())


def two_way(text: str) -> str:
    """The demo's two-way section, without what changes from run to run (ports, timings)."""
    return text[text.index("two-way:") : text.index("next steps")]


@pytest.mark.integration
@pytest.mark.parametrize("seed", [7, 3])
async def test_the_reply_is_yielded_once_whole_and_the_summary_adds_up(seed: int) -> None:
    """The reply in three shuffled parts, one posted twice and one refused 503 then retried, is
    yielded once, complete, with the text sent; every post is accounted for, per part and in
    the summary; the same seed tells the same two-way story again."""
    out = io.StringIO()
    assert await run_demo(seed=seed, drop_rate=0.3, out=out) == 0
    section = two_way(out.getvalue())
    duplicated, failing = chosen_parts(seed)
    assert duplicated != failing
    assert f"Part {duplicated} is posted twice" in section
    assert f"first post of part {failing}:" in section
    for number in (1, 2, 3):
        line = next(x for x in section.splitlines() if x.startswith(f"  part {number}/3"))
        if number == duplicated:
            assert line.endswith("2 post(s): received (204), duplicate (204, nothing new)")
        elif number == failing:
            assert line.endswith(
                "2 post(s): 503, store unavailable: retried after 1 s, received (204)"
            )
        else:
            assert line.endswith("1 post(s): received (204)")
    text = " ".join(section.split())
    posts, parts, dups, retries = numbers(
        r"posts (\d+) by the simulator = (\d+) parts \+ (\d+) duplicate \+ (\d+) retry", text
    )
    assert (posts, parts, dups, retries) == (5, 3, 1, 1)
    acked, refused, unavailable = numbers(
        r"(\d+) answered 204, (\d+) answered 503 \(the store was unavailable for (\d+)\)", text
    )
    assert acked + refused == posts and refused == unavailable == retries
    recorded, duplicates = numbers(
        r"of the \d+ answered 204: (\d+) new parts recorded, (\d+) duplicate", text
    )
    assert recorded + duplicates == acked and recorded == parts and duplicates == dups
    assert "1 yielded, complete: True, text as sent: True" in text
    assert section.count("3/3 parts, complete") == 1
    again = io.StringIO()
    assert await run_demo(seed=seed, drop_rate=0.3, out=again) == 0
    assert two_way(again.getvalue()) == section


def _message(parts: int) -> InjectedInbound:
    texts = [REPLY[i * 153 : (i + 1) * 153] for i in range(parts)]
    return InjectedInbound(
        sender="33612345670",
        destination="32470000000",
        text="".join(texts),
        date_time="2021-11-24T09:13:40.639",
        parts=tuple(InboundPart(f"id-{n}", t, n) for n, t in enumerate(texts, start=1)),
        reference=7,
        concat=False,
        posted=True,
        polled=False,
    )


@pytest.mark.parametrize("concat", [False, None, True])
def test_duplicate_parts_adds_exactly_those_copies(concat: bool | None) -> None:
    """duplicate_parts posts the named parts twice on top of what the seeded rate draws, in the
    same shuffled order, so that a given seed's other posts are unchanged."""
    subscription = InboundSubscription("https://me.example/in", "tok", concat)
    settings = InboundSettings(seed=1, duplicate_rate=0.3)
    message = _message(3)
    plain = _posts(message, subscription, settings, random.Random(5))
    forced = _posts(message, subscription, settings, random.Random(5), frozenset({1}))
    first = [(p.message_id, p.copy) for p in plain if p.copy == 0]
    assert [(p.message_id, p.copy) for p in forced if p.copy == 0] == first
    doubled = {p.message_id for p in plain if p.copy == 1}
    assert {p.message_id for p in forced if p.copy == 1} == doubled | {"id-1"}
    none = _posts(message, subscription, InboundSettings(seed=1), random.Random(5), frozenset({2}))
    # Joined (concat=true), the one post is part 1's: there is no part 2 to post twice.
    assert {p.message_id for p in none if p.copy == 1} == (set() if concat is True else {"id-2"})
