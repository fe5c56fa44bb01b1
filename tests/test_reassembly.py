"""The reassembly rules of long inbound messages (DESIGN.md "Whole"), as a pure state machine."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opensms_async._converter import structure, unstructure
from opensms_async._reassembly import (
    Assembled,
    GroupKey,
    Part,
    PartGroup,
    add_part,
    deadline,
    expire,
    group_key,
)

T = 600.0
SENDER, DEST = "tel:+32470000001", "tel:+32470000000"
TEXTS = st.lists(st.text(min_size=1, max_size=6), min_size=2, max_size=8)


class Driver:
    """Keeps the groups by key and the ids seen, as an inbox does in its store, and collects what
    is yielded."""

    def __init__(self, timeout: float = T) -> None:
        self.timeout = timeout
        self.groups: dict[GroupKey, PartGroup] = {}
        self.seen: set[str] = set()
        self.out: list[Assembled] = []
        self.duplicates = 0

    def add(self, part: Part, now: float) -> None:
        if part.message_id in self.seen:  # the caller's record, passed before any group
            self.duplicates += 1
            return
        self.seen.add(part.message_id)
        key = group_key(part)
        outcome = add_part(self.groups.get(key) if key else None, part, now, timeout=self.timeout)
        self._keep(key, outcome.group, outcome.messages)
        self.duplicates += outcome.duplicate

    def expire(self, now: float) -> None:
        for key, group in list(self.groups.items()):
            outcome = expire(group, now, timeout=self.timeout)
            self._keep(key, outcome.group, outcome.messages)

    def finish(self, now: float) -> list[Assembled]:
        """Expire everything far in the future: every held part is yielded, every record goes."""
        for step in range(3):
            self.expire(now + step * 2 * self.timeout)
        assert self.groups == {}
        return self.out

    def _keep(
        self, key: GroupKey | None, group: PartGroup | None, messages: Sequence[Assembled]
    ) -> None:
        self.out.extend(messages)
        if key is None:
            return
        if group is None:
            self.groups.pop(key, None)
        else:
            self.groups[key] = group


def parts_of(
    texts: Sequence[str], *, prefix: str = "m", reference: int = 7, sender: str = SENDER
) -> list[Part]:
    """The parts of one long message, numbered from 1, with ids ``<prefix>-<number>``."""
    total = len(texts)
    return [
        Part(f"{prefix}-{n}", sender, DEST, text, reference, n, total)
        for n, text in enumerate(texts, start=1)
    ]


def timed(parts: Iterable[Part], times: Sequence[float]) -> list[tuple[float, Part]]:
    """Parts paired with sorted arrival times."""
    return list(zip(sorted(times), parts, strict=True))


@st.composite
def arrivals(draw: st.DrawFn, texts: Sequence[str], prefix: str, start: float) -> list[Part]:
    """The parts of a message in any order, some sent twice."""
    parts = parts_of(texts, prefix=prefix)
    dups = draw(st.lists(st.sampled_from(parts), max_size=4))
    return list(draw(st.permutations([*parts, *dups])))


@settings(max_examples=300, deadline=None)
@given(texts=TEXTS, data=st.data())
def test_any_order_with_duplicates_yields_one_whole_message(
    texts: list[str], data: st.DataObject
) -> None:
    """Parts in any order, some twice, within the window: exactly one message, the right text."""
    order = data.draw(arrivals(texts, "m", 0.0))
    times = data.draw(st.lists(st.floats(0, T * 0.999), min_size=len(order), max_size=len(order)))
    expiries = data.draw(st.lists(st.floats(0, T * 0.999), max_size=3))
    driver = Driver()
    events = [(t, 0, p) for t, p in timed(order, times)] + [(t, 1, None) for t in expiries]
    for now, _, part in sorted(events, key=lambda e: (e[0], e[1])):
        if part is None:
            driver.expire(now)
        else:
            driver.add(part, now)
    (message,) = driver.finish(T * 2)
    assert message.text == "".join(texts)
    assert message.complete
    assert (message.parts, message.total) == (len(texts), len(texts))
    assert message.message_id == "m-1"
    assert message.part_ids == tuple(f"m-{n}" for n in range(1, len(texts) + 1))
    assert driver.duplicates == len(order) - len(texts)


@st.composite
def message_runs(draw: st.DrawFn) -> list[tuple[list[str], list[int]]]:
    """A few messages under one key (same sender, destination, reference, total): each its texts
    and the part numbers that arrive (all of them, or a non-empty subset)."""
    total = draw(st.integers(2, 5))
    runs = []
    for _ in range(draw(st.integers(1, 4))):
        texts = draw(st.lists(st.text(min_size=1, max_size=4), min_size=total, max_size=total))
        numbers = list(range(1, total + 1))
        if draw(st.booleans()):
            numbers = sorted(draw(st.sets(st.sampled_from(numbers), min_size=1)))
        runs.append((texts, numbers))
    return runs


@settings(max_examples=300, deadline=None)
@given(runs=message_runs(), data=st.data())
def test_recycled_references_never_join_two_messages(
    runs: list[tuple[list[str], list[int]]], data: st.DataObject
) -> None:
    """Messages reusing one reference come out one by one, within or beyond the window.

    A message that completed may be followed at once by the next under the same reference; one
    that lost parts is followed after its window (within it, no rule can tell the two apart).
    """
    driver = Driver()
    expected = []
    start = 0.0
    for index, (texts, numbers) in enumerate(runs):
        parts = [p for p in parts_of(texts, prefix=f"r{index}") if p.number in numbers]
        order = data.draw(st.permutations(parts))
        offsets = data.draw(
            st.lists(st.floats(0, T * 0.9), min_size=len(order), max_size=len(order))
        )
        times = [start + o for o in offsets]
        for now, part in timed(order, times):
            driver.add(part, now)
        complete = len(numbers) == len(texts)
        kept = [texts[n - 1] for n in numbers]
        expected.append((f"r{index}-{numbers[0]}", "".join(kept), complete, len(numbers)))
        gap = data.draw(st.floats(0, 3 * T))
        # An incomplete message's window opened with its first part to arrive: the next one
        # comes at its end or later (computed as the rules compute it, to the same float).
        start = max(times) + gap if complete else min(times) + T + gap
    out = driver.finish(start + T)
    assert [(m.message_id, m.text, m.complete, m.parts) for m in out] == expected


def test_timeout_yields_what_came_and_a_late_part_is_yielded_too() -> None:
    """After the window, the parts held come out incomplete; a part after that is not dropped."""
    one, two, three = parts_of(["Hel", "lo ", "you"])
    driver = Driver()
    driver.add(three, 0.0)
    driver.add(one, 5.0)
    driver.expire(T - 0.001)
    assert driver.out == []
    driver.expire(T)
    (first,) = driver.out
    assert (first.message_id, first.text, first.parts, first.total) == ("m-1", "Helyou", 2, 3)
    assert not first.complete
    assert first.received_at == 0.0
    driver.add(two, T + 1)
    group = driver.groups[group_key(two)]  # type: ignore[index]
    assert deadline(group, timeout=T) == 2 * T + 1  # its own window
    (_, late) = driver.finish(T + 1 + T)
    assert (late.message_id, late.text, late.parts, late.complete) == ("m-2", "lo ", 1, False)
    assert late.received_at == T + 1


def test_a_part_after_the_window_flushes_the_group_without_expire() -> None:
    """Without an expire call, the next part of the key after the window yields the old group."""
    one, two = parts_of(["a", "b"])
    driver = Driver()
    driver.add(one, 0.0)
    driver.add(two, T)
    assert [(m.text, m.complete) for m in driver.out] == [("a", False)]
    assert [(m.text, m.complete) for m in driver.finish(3 * T)] == [("a", False), ("b", False)]


def test_a_repeated_part_number_under_a_new_id_starts_a_new_message() -> None:
    """Within the window, part 1 again under a new id: the old group is yielded, incomplete."""
    old = parts_of(["old-1", "old-2"], prefix="a")
    new = parts_of(["new-1", "new-2"], prefix="b")
    driver = Driver()
    driver.add(old[0], 0.0)
    driver.add(new[0], 1.0)
    driver.add(new[1], 2.0)
    assert [(m.message_id, m.text, m.complete) for m in driver.finish(3.0)] == [
        ("a-1", "old-1", False),
        ("b-1", "new-1new-2", True),
    ]


def test_a_group_ignores_a_part_it_holds() -> None:
    """Without the caller's record of ids, a part sent twice still joins its group once."""
    one, two = parts_of(["a", "b"])
    first = add_part(None, one, 0.0)
    again = add_part(first.group, one, 1.0)
    assert again.duplicate and again.messages == () and again.group == first.group
    done = add_part(again.group, two, 2.0)
    assert [m.text for m in done.messages] == ["ab"]


def test_duplicates_after_completion_are_the_callers_record() -> None:
    """A part re-posted after its message was yielded is caught by the ids seen, not a group."""
    one, two = parts_of(["a", "b"])
    driver = Driver()
    driver.add(one, 0.0)
    driver.add(two, 1.0)
    driver.add(one, 1.0 + 3 * T)
    assert driver.duplicates == 1
    assert [m.text for m in driver.finish(5 * T)] == ["ab"]


def test_different_senders_destinations_or_totals_never_mix() -> None:
    """Same reference, different sender, destination or total: separate messages, interleaved."""
    a = parts_of(["a1", "a2"], prefix="a")
    b = parts_of(["b1", "b2"], prefix="b", sender="tel:+32470000002")
    c = [
        attrs.evolve(p, destination="tel:+32470000009") for p in parts_of(["c1", "c2"], prefix="c")
    ]
    d = parts_of(["d1", "d2", "d3"], prefix="d")
    driver = Driver()
    for index, part in enumerate([a[0], b[1], c[0], d[0], d[2], a[1], b[0], c[1], d[1]]):
        driver.add(part, float(index))
    assert sorted(m.text for m in driver.out if m.complete) == ["a1a2", "b1b2", "c1c2", "d1d2d3"]
    assert len(driver.finish(10.0)) == 4


@pytest.mark.parametrize(
    ("reference", "number", "total"),
    [
        (None, None, None),
        (7, None, 2),
        (7, 1, None),
        (None, 1, 2),
        (7, 1, 1),
        (7, 0, 2),
        (7, 3, 2),
        (7, 1, 256),
        (-1, 1, 2),
        (65536, 1, 2),
        (True, 1, 2),
        (7, True, 2),
    ],
)
def test_parts_without_agreeing_udh_fields_are_messages_of_their_own(
    reference: int | None, number: int | None, total: int | None
) -> None:
    """Missing, inconsistent or out-of-range UDH fields: each part is yielded at once, whole."""
    part = Part("m-1", SENDER, DEST, "hello", reference, number, total)
    assert group_key(part) is None
    outcome = add_part(None, part, 3.0)
    assert outcome.group is None
    (message,) = outcome.messages
    assert (message.message_id, message.text, message.complete) == ("m-1", "hello", True)
    assert (message.parts, message.total, message.received_at) == (1, 1, 3.0)


def test_a_sixteen_bit_reference_joins_like_a_one_byte_one() -> None:
    """A reference above 255 (TS 23.040's 16-bit header) still keys its parts."""
    one, two = parts_of(["a", "b"], reference=40_000)
    driver = Driver()
    driver.add(two, 0.0)
    driver.add(one, 1.0)
    assert [(m.text, m.message_id) for m in driver.out] == [("ab", "m-1")]


def test_a_part_of_another_key_is_refused() -> None:
    """Handing a group the part of another key is a caller's mistake, reported as ValueError."""
    one = parts_of(["a", "b"])[0]
    other = parts_of(["x", "y"], reference=8)[0]
    group = add_part(None, one, 0.0).group
    assert group is not None
    with pytest.raises(ValueError, match="does not belong"):
        add_part(group, other, 1.0)


def test_records_go_once_their_message_is_yielded() -> None:
    """deadline says when to call expire; a yielded group (whole or not) leaves no record."""
    one, two = parts_of(["a", "b"])
    group = add_part(None, one, 10.0).group
    assert group is not None
    assert deadline(group) == 10.0 + 600.0
    assert expire(group, 609.0).group == group
    late = expire(group, 610.0)
    assert late.group is None and [(m.text, m.complete) for m in late.messages] == [("a", False)]
    done = add_part(group, two, 20.0)
    assert done.group is None and [(m.text, m.complete) for m in done.messages] == [("ab", True)]


def test_source_and_date_time_are_the_first_parts() -> None:
    """A joined message carries the source and dateTime of its part 1, whatever came first."""
    one, two = parts_of(["a", "b"])
    one = attrs.evolve(one, source="poll", date_time="2021-11-24T09:13:40.639")
    two = attrs.evolve(two, source="callback", date_time="2021-11-24T09:13:41.000")
    group = add_part(None, two, 0.0).group
    (message,) = add_part(group, one, 1.0).messages
    assert (message.source, message.date_time) == ("poll", "2021-11-24T09:13:40.639")


@settings(max_examples=100, deadline=None)
@given(texts=TEXTS, data=st.data())
def test_groups_survive_a_json_round_trip(texts: list[str], data: st.DataObject) -> None:
    """A group is plain data: through JSON and back it is equal, so any store can keep it."""
    parts = data.draw(st.permutations(parts_of(texts)))
    group: PartGroup | None = None
    for index, part in enumerate(parts[:-1]):
        group = add_part(group, part, float(index)).group
        assert group is not None
        copy = structure(json.loads(json.dumps(unstructure(group))), PartGroup)
        assert copy == group
        group = copy
    final = add_part(group, parts[-1], 99.0)
    assert [m.text for m in final.messages] == ["".join(texts)]
