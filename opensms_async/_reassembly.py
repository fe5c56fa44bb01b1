"""Joining the parts of long inbound messages: a small state machine over plain values.

Free of I/O, and with no clock of its own: every time is an argument (seconds on the caller's
clock). The caller keeps one :class:`PartGroup` per :func:`group_key` in any store (the groups
are frozen attrs records of strings, ints and floats, so they serialise as they are), hands it to
:func:`add_part` with each part and to :func:`expire` when :func:`deadline` comes, and stores the
group that comes back (``None``: delete the record). What to yield comes back as
:class:`Assembled` messages, in order.

The rule, in plain words:

1. **Which parts are parts.** A part joins others only when it carries a reference
   (``udhMessageId``), a part number (``concatPart``) and a total (``concatTotal``) that agree:
   ``2 <= total <= 255``, ``1 <= part <= total`` and ``0 <= reference <= 65535`` (BICS documents
   one byte; a handset may use the 16-bit reference of TS 23.040, and joining by it is as sound).
   Any other message, without UDH fields, with some missing or not agreeing (total 1, part 0,
   part above total, total above 255), is a message of its own, yielded at once and complete.
2. **Which parts belong together.** Parts with the same sender, destination, reference and total
   (the key: a different total cannot be the same message) that come within one window. The
   window opens with the group's first part and lasts ``timeout`` seconds.
3. **When a new message begins under the same key.** References are one byte, so a handset reuses
   them. A new group starts when a part comes after the open group's window, or when a part
   number the open group already holds comes again under a different ``messageId`` (the same
   part re-sent keeps its id). In both cases the open group is yielded first, incomplete.
4. **Complete.** Once parts 1 to total are all held, they are yielded as one message: the texts
   in part order with no separator, the ``message_id``, ``source`` and ``date_time`` of part 1,
   ``complete=True``; the group's record goes.
5. **Timeout.** When a group's window ends (:func:`expire`, or the next part of its key), what
   has come is yielded with ``complete=False``: texts in part order, ``message_id`` of the lowest
   part present; the record goes. A part arriving after that starts a group of its own, yielded
   when its own window ends (or completed, when it turns out to open a new message): never
   dropped.
6. **Duplicates** are the caller's to catch, with its record of the ``messageId`` s seen, which
   every part passes before it reaches a group (the inbox's stores check it in the same atomic
   step, and remember an id for days, as long as BICS retries). A group still ignores a part whose
   ``messageId`` it holds, so that a caller without such a record never joins a part twice.

What no rule can tell apart: a message whose parts never all came, followed within its window by
a new message under the same key whose first part fills a gap of the old one. That needs the
handset to wrap its 256 references within one window to the same destination.

The caller gives sender and destination in one canonical form (``tel:+<digits>``), so that a part
received by callback and one fetched by polling land under the same key.
"""

from __future__ import annotations

from typing import TypeAlias

import attrs

__all__ = [
    "DEFAULT_REASSEMBLY_TIMEOUT",
    "MAX_PARTS",
    "MAX_REFERENCE",
    "Assembled",
    "GroupKey",
    "Outcome",
    "Part",
    "PartGroup",
    "add_part",
    "deadline",
    "expire",
    "group_key",
    "join",
    "single",
]

DEFAULT_REASSEMBLY_TIMEOUT = 600.0
"""Seconds a group waits for its missing parts before what came is yielded incomplete."""

MAX_PARTS = 255
"""The largest ``concatTotal`` a concatenation header can hold (one byte)."""

MAX_REFERENCE = 65535
"""The largest reference: BICS documents one byte, TS 23.040 also has a 16-bit one."""

GroupKey: TypeAlias = tuple[str, str, int, int]
"""``(sender, destination, reference, total)``: the parts that may belong together."""


@attrs.frozen
class Part:
    """One inbound message or message part, as reassembly needs it.

    ``reference``, ``number`` and ``total`` are the wire's ``udhMessageId``, ``concatPart`` and
    ``concatTotal`` (None when absent). ``source`` (``"callback"`` or ``"poll"``) and
    ``date_time`` (the wire's ``dateTime``, as given) are carried through to what is yielded.
    """

    message_id: str
    sender: str
    destination: str
    text: str
    reference: int | None = None
    number: int | None = None
    total: int | None = None
    source: str = "callback"
    date_time: str | None = None


@attrs.frozen
class PartGroup:
    """The parts held under one key (in part order) and when the first of them came."""

    key: GroupKey
    parts: tuple[Part, ...] = ()
    opened_at: float = 0.0


@attrs.frozen
class Assembled:
    """A message to yield: joined parts, or a message that came whole.

    ``parts`` counts the parts present, ``total`` the parts announced (1 for a message that came
    whole); ``part_ids`` are the ``messageId`` s it holds, in part order; ``received_at`` is when
    its first part came; ``source`` and ``date_time`` are its first part's.
    """

    message_id: str
    sender: str
    destination: str
    text: str
    parts: int
    total: int
    complete: bool
    part_ids: tuple[str, ...]
    received_at: float
    source: str = "callback"
    date_time: str | None = None


@attrs.frozen
class Outcome:
    """What a step gives back: the group to store (None: delete it) and the messages to yield."""

    group: PartGroup | None
    messages: tuple[Assembled, ...] = ()
    duplicate: bool = False


def group_key(part: Part) -> GroupKey | None:
    """The key of a part that may join others, or None for a message of its own (rule 1)."""
    fields = (part.reference, part.number, part.total)
    ints = [v for v in fields if isinstance(v, int) and not isinstance(v, bool)]
    if len(ints) != len(fields):
        return None
    reference, number, total = ints
    if not (2 <= total <= MAX_PARTS and 1 <= number <= total and 0 <= reference <= MAX_REFERENCE):
        return None
    return (part.sender, part.destination, reference, total)


def single(part: Part, now: float) -> Assembled:
    """A message that came whole (or whose UDH fields do not agree): yielded as it is."""
    return Assembled(
        message_id=part.message_id,
        sender=part.sender,
        destination=part.destination,
        text=part.text,
        parts=1,
        total=1,
        complete=True,
        part_ids=(part.message_id,),
        received_at=now,
        source=part.source,
        date_time=part.date_time,
    )


def add_part(
    group: PartGroup | None,
    part: Part,
    now: float,
    *,
    timeout: float = DEFAULT_REASSEMBLY_TIMEOUT,
) -> Outcome:
    """Take ``part``, arriving at ``now``, into ``group`` (the stored group of its key, or None).

    Returns the group to store and what to yield: the group's earlier message when ``part``
    begins a new one (rule 3), the whole message when ``part`` completes it (rule 4), or a
    message of its own for a part that joins nothing (rule 1).
    """
    key = group_key(part)
    if key is None:
        return Outcome(group, (single(part, now),))
    yielded: tuple[Assembled, ...] = ()
    if group is not None:
        if group.key != key:
            raise ValueError(f"part {part.message_id!r} does not belong to the group {group.key}")
        if any(held.message_id == part.message_id for held in group.parts):
            return Outcome(group, duplicate=True)
        if now >= group.opened_at + timeout or any(h.number == part.number for h in group.parts):
            yielded, group = (join(group),), None  # its window ended, or a new message begins
    if group is None:
        group = PartGroup(key, opened_at=now)
    group = _hold(group, part)
    if len(group.parts) == key[3]:
        return Outcome(None, (*yielded, join(group)))
    return Outcome(group, yielded)


def expire(group: PartGroup, now: float, *, timeout: float = DEFAULT_REASSEMBLY_TIMEOUT) -> Outcome:
    """Yield what a group whose window has ended holds (incomplete) and delete it (None); a
    group whose window has not ended comes back as it is."""
    if now >= group.opened_at + timeout:
        return Outcome(None, (join(group),))
    return Outcome(group)


def deadline(group: PartGroup, *, timeout: float = DEFAULT_REASSEMBLY_TIMEOUT) -> float:
    """When the window of ``group`` ends: :func:`expire` yields it from then on."""
    return group.opened_at + timeout


def join(group: PartGroup) -> Assembled:
    """The parts a group holds as one message (complete when all came)."""
    first = group.parts[0]
    return Assembled(
        message_id=first.message_id,
        sender=first.sender,
        destination=first.destination,
        text="".join(part.text for part in group.parts),
        parts=len(group.parts),
        total=group.key[3],
        complete=len(group.parts) == group.key[3],
        part_ids=tuple(part.message_id for part in group.parts),
        received_at=group.opened_at,
        source=first.source,
        date_time=first.date_time,
    )


def _hold(group: PartGroup, part: Part) -> PartGroup:
    parts = tuple(sorted((*group.parts, part), key=lambda p: p.number or 0))
    return attrs.evolve(group, parts=parts)
