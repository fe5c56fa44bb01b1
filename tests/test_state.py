"""The merge rule (``_state.merge``): every pair of statuses, convergence in any order, multipart.

The expected outcomes come from an oracle written here from DESIGN.md ("Delivery states and the
merge rule"), not from the implementation's tables.
"""

from __future__ import annotations

import itertools
import pickle
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from opensms_async._exceptions import InvalidUpdateError
from opensms_async._models import DeliveryStatus, Status
from opensms_async._state import (
    DeliveryEvent,
    DeliveryState,
    DeliveryUpdate,
    MergeOutcome,
    MergeResult,
    Source,
    build_event,
    merge,
    new_update,
    rank,
)

S = DeliveryStatus
M = MergeOutcome

# --- the oracle ---------------------------------------------------------------------------------

LADDER: tuple[Status, ...] = (
    S.MESSAGE_ACCEPTED,
    S.MESSAGE_WAITING,
    S.DELIVERED_TO_NETWORK,
    S.DELIVERY_UNCERTAIN,
    S.PARTIALLY_DELIVERED,
)
"""Non-final statuses, low to high; each of them ranks above any unknown string."""

PRECEDENCE: tuple[Status, ...] = (
    S.DELIVERY_NOTIFICATION_NOT_SUPPORTED,
    S.INVALID_SRC_ADDRESS,
    S.INVALID_DEST_ADDRESS,
    S.DELIVERY_IMPOSSIBLE,
    S.DELIVERED_TO_TERMINAL,
)
"""Final statuses, from the weakest to the strongest when two of them contradict."""

FOO, BAR = "SomethingNew", "AnotherNewThing"
"""Two status strings the SDK does not know."""

Item = tuple[Status, int | None]
"""A status with its smsPartsDeliveredToTerminal (None when absent)."""

ITEMS: tuple[Item, ...] = (
    *((status, None) for status in DeliveryStatus),
    (S.PARTIALLY_DELIVERED, 1),
    (S.PARTIALLY_DELIVERED, 2),
    (S.DELIVERED_TO_TERMINAL, 2),
    (FOO, None),
    (BAR, None),
)


def is_final(status: Status) -> bool:
    """The oracle's notion of final: one of the five finals."""
    return status in PRECEDENCE


def level(item: Item) -> tuple[int, int, int]:
    """Where an item sits: unknown < the ladder (then parts) < the finals by precedence."""
    status, parts = item
    count = -1 if parts is None else parts
    if is_final(status):
        return (2, PRECEDENCE.index(status), count)
    if status in LADDER:
        return (1, LADDER.index(status), count)
    return (0, 0, count)


@attrs.frozen
class Expected:
    """What merging a second item into a state made from a first item must give."""

    outcome: MergeOutcome
    advanced: bool
    changed: bool
    status: Status
    parts: int | None
    conflict: bool = False


def expected(first: Item, second: Item) -> Expected:
    """The documented rule, case by case."""
    (s1, p1), (s2, p2) = first, second
    if s1 == s2:  # an absent part count ranks as zero, and is filled in quietly
        n1, n2 = p1 or 0, p2 or 0
        if n2 > n1 and not is_final(s1):
            return Expected(M.APPLIED, True, True, s2, p2)
        more = p2 is not None and (p1 is None or p2 > p1)  # final is final: kept quietly
        outcome = M.STALE if n2 < n1 and not is_final(s1) else M.DUPLICATE
        return Expected(outcome, False, more, s1, p2 if more else p1)
    if is_final(s1) and is_final(s2):
        wins = PRECEDENCE.index(s2) > PRECEDENCE.index(s1)
        winner = second if wins else first
        return Expected(M.CONFLICT, wins, True, winner[0], winner[1], conflict=True)
    if s2 not in LADDER and not is_final(s2):  # unknown: below everything, and the first stays
        return Expected(M.STALE, False, False, s1, p1)
    if level(second) > level(first):
        return Expected(M.APPLIED, True, True, s2, p2)
    return Expected(M.STALE, False, False, s1, p1)


# --- helpers ------------------------------------------------------------------------------------


def update(item: Item, **kwargs: Any) -> DeliveryUpdate:
    """A callback update for the one pair these tests use."""
    status, parts = item
    return DeliveryUpdate("req-1", "tel:+33612345678", status, parts_delivered=parts, **kwargs)


def fold(updates: Iterable[DeliveryUpdate]) -> tuple[DeliveryState | None, list[MergeResult]]:
    """Merge updates one after the other, as a store does."""
    state: DeliveryState | None = None
    results = []
    for u in updates:
        result = merge(state, u)
        results.append(result)
        state = result.state
    return state, results


def item_id(item: Item) -> str:
    """A readable test id for an item."""
    status, parts = item
    return str(status) if parts is None else f"{status}({parts})"


PAIRS = list(itertools.product(ITEMS, repeat=2))
PAIR_IDS = [f"{item_id(a)}->{item_id(b)}" for a, b in PAIRS]

# --- every pair, in both orders -----------------------------------------------------------------


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=PAIR_IDS)
def test_pair(first: Item, second: Item) -> None:
    """Merging any status into any stored status gives the documented outcome and state."""
    want = expected(first, second)
    stored = merge(None, update(first)).state
    result = merge(stored, update(second))
    assert (result.outcome, result.advanced, result.changed) == (
        want.outcome,
        want.advanced,
        want.changed,
    )
    assert (result.state.status, result.state.parts_delivered) == (want.status, want.parts)
    assert result.state.conflict is want.conflict
    assert result.previous == first[0]


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=PAIR_IDS)
def test_pair_never_regresses_a_final(first: Item, second: Item) -> None:
    """A final state stays final whatever arrives next, and only a stronger final replaces it."""
    stored = merge(None, update(first)).state
    result = merge(stored, update(second))
    if is_final(first[0]):
        assert is_final(result.state.status)
        assert result.state.is_final
        if result.state.status != first[0]:
            assert PRECEDENCE.index(result.state.status) > PRECEDENCE.index(first[0])


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=PAIR_IDS)
def test_pair_unchanged_state_is_the_same_object(first: Item, second: Item) -> None:
    """When nothing changes, the result carries the stored state object itself."""
    stored = merge(None, update(first)).state
    result = merge(stored, update(second))
    assert (result.state is stored) is not result.changed


def test_first_sighting_applies() -> None:
    """A pair never seen before is stored as is and advances from nothing."""
    result = merge(None, update((S.DELIVERED_TO_NETWORK, None), sender="tel:+32123", sms_parts=2))
    assert (result.outcome, result.advanced, result.changed) == (M.APPLIED, True, True)
    assert result.previous is None
    assert (result.state.status, result.state.sender, result.state.sms_parts) == (
        S.DELIVERED_TO_NETWORK,
        "tel:+32123",
        2,
    )


def test_late_delivered_to_network_never_overwrites_delivered() -> None:
    """The example of DESIGN.md: a late DeliveredToNetwork is stale after DeliveredToTerminal."""
    state, results = fold(
        [update((S.DELIVERED_TO_TERMINAL, None)), update((S.DELIVERED_TO_NETWORK, None))]
    )
    assert state is not None and state.status == S.DELIVERED_TO_TERMINAL
    assert results[1].outcome == M.STALE


def test_stale_update_teaches_sender_and_parts_without_an_event() -> None:
    """A stale update still fills in an unknown sender and part count: changed, not advanced."""
    _, results = fold(
        [
            update((S.DELIVERED_TO_TERMINAL, None)),
            update((S.MESSAGE_WAITING, None), sender="tel:+32123", sms_parts=3),
        ]
    )
    last = results[-1]
    assert (last.outcome, last.advanced, last.changed) == (M.STALE, False, True)
    assert (last.state.sender, last.state.sms_parts) == ("tel:+32123", 3)
    assert last.state.status == S.DELIVERED_TO_TERMINAL


def test_known_sender_is_not_replaced() -> None:
    """The first sender and part count learned stay; later ones do not overwrite them."""
    state, _ = fold(
        [
            update((S.MESSAGE_WAITING, None), sender="tel:+32111", sms_parts=2),
            update((S.DELIVERED_TO_TERMINAL, None), sender="tel:+32999", sms_parts=5),
        ]
    )
    assert state is not None and (state.sender, state.sms_parts) == ("tel:+32111", 2)


def test_advance_keeps_update_time() -> None:
    """An advance stamps the state with the update's time; a stale update does not."""
    state, _ = fold(
        [
            update((S.MESSAGE_WAITING, None), received_at=10.0),
            update((S.DELIVERED_TO_TERMINAL, None), received_at=30.0),
            update((S.DELIVERED_TO_NETWORK, None), received_at=40.0),
        ]
    )
    assert state is not None and state.updated_at == 30.0


# --- conflicting finals -------------------------------------------------------------------------


@pytest.mark.parametrize(("weak", "strong"), list(itertools.combinations(PRECEDENCE, 2)), ids=str)
def test_conflict_strongest_final_wins_in_either_order(weak: Status, strong: Status) -> None:
    """Two different finals end on the stronger one, flagged, whichever arrived first."""
    for order in ((weak, strong), (strong, weak)):
        state, results = fold(update((status, None)) for status in order)
        assert state is not None
        assert (state.status, state.conflict) == (strong, True)
        assert results[1].outcome == M.CONFLICT
        assert results[1].advanced is (order[1] == strong)
        assert results[1].changed


def test_conflict_every_order_of_all_five_finals() -> None:
    """All 120 orders of the five finals end on DeliveredToTerminal with the conflict flag."""
    for order in itertools.permutations(PRECEDENCE):
        state, results = fold(update((status, None)) for status in order)
        assert state is not None
        assert (state.status, state.conflict) == (S.DELIVERED_TO_TERMINAL, True)
        assert all(r.outcome == M.CONFLICT for r in results[1:])


def test_conflict_flag_set_without_event_when_the_weaker_final_arrives_second() -> None:
    """The losing final changes the state (the flag) but logs no event."""
    _, results = fold(
        [update((S.DELIVERED_TO_TERMINAL, None)), update((S.DELIVERY_IMPOSSIBLE, None))]
    )
    assert (results[1].advanced, results[1].changed, results[1].state.conflict) == (
        False,
        True,
        True,
    )
    assert results[1].previous == S.DELIVERED_TO_TERMINAL


def test_conflict_winner_reports_the_loser_as_previous() -> None:
    """When the stronger final arrives second, its advance names the weaker final as previous."""
    _, results = fold(
        [update((S.DELIVERY_IMPOSSIBLE, None)), update((S.DELIVERED_TO_TERMINAL, None))]
    )
    assert results[1].advanced and results[1].previous == S.DELIVERY_IMPOSSIBLE


def test_repeated_conflict_changes_nothing_more() -> None:
    """Once flagged, a repeat of the losing final is neither a change nor an event."""
    _, results = fold(
        [
            update((S.DELIVERED_TO_TERMINAL, None)),
            update((S.DELIVERY_IMPOSSIBLE, None)),
            update((S.DELIVERY_IMPOSSIBLE, None)),
        ]
    )
    assert (results[2].outcome, results[2].advanced, results[2].changed) == (
        M.CONFLICT,
        False,
        False,
    )


# --- unknown statuses ---------------------------------------------------------------------------


def test_unknown_status_ranks_below_every_known_one() -> None:
    """An unknown string has rank 0, below MessageAccepted."""
    assert rank(FOO) == 0 < rank(S.MESSAGE_ACCEPTED)
    assert all(rank(status) > 0 for status in DeliveryStatus)


def test_between_two_unknowns_the_first_stays() -> None:
    """Two different unknown strings: whichever came first stays (the rule is order-dependent)."""
    for first, second in ((FOO, BAR), (BAR, FOO)):
        state, results = fold([update((first, None)), update((second, None))])
        assert state is not None and state.status == first
        assert results[1].outcome == M.STALE


def test_two_unknowns_then_a_known_status_converge() -> None:
    """The unknowns' order stops mattering once any known status arrives."""
    finals = {
        fold(update((s, None)) for s in order)[0]
        for order in itertools.permutations([FOO, BAR, S.DELIVERED_TO_NETWORK])
    }
    assert {(s.status, s.parts_delivered, s.conflict) for s in finals if s} == {
        (S.DELIVERED_TO_NETWORK, None, False)
    }


def test_unknown_status_is_kept_verbatim() -> None:
    """An unknown status string is stored as given, not rejected or renamed."""
    state, _ = fold([update((FOO, None))])
    assert state is not None and state.status == FOO and not state.is_final


# --- multipart ----------------------------------------------------------------------------------


def multipart(status: Status, parts: int | None) -> DeliveryUpdate:
    """An update for a three-part message."""
    return update((status, parts), sms_parts=3)


def test_multipart_seed_single_delivered_for_the_first_part() -> None:
    """The seed's one DeliveredToTerminal (first part) makes the recipient final once."""
    state, results = fold(
        [
            multipart(S.MESSAGE_WAITING, None),
            multipart(S.DELIVERED_TO_TERMINAL, None),
            multipart(S.DELIVERED_TO_TERMINAL, None),
        ]
    )
    assert state is not None and (state.status, state.sms_parts) == (S.DELIVERED_TO_TERMINAL, 3)
    assert [r.advanced for r in results] == [True, True, False]


def test_multipart_v3_in_order_emits_one_event_per_part() -> None:
    """v3's PartiallyDelivered per part, then DeliveredToTerminal, advance three times in order."""
    state, results = fold(
        [
            multipart(S.PARTIALLY_DELIVERED, 1),
            multipart(S.PARTIALLY_DELIVERED, 2),
            multipart(S.DELIVERED_TO_TERMINAL, 3),
        ]
    )
    assert [r.advanced for r in results] == [True, True, True]
    assert state is not None and (state.status, state.parts_delivered) == (
        S.DELIVERED_TO_TERMINAL,
        3,
    )


def test_multipart_v3_any_order_with_duplicates_converges() -> None:
    """Every order of v3's part notifications, duplicated, ends delivered with all parts."""
    notes = [
        multipart(S.PARTIALLY_DELIVERED, 1),
        multipart(S.PARTIALLY_DELIVERED, 2),
        multipart(S.DELIVERED_TO_TERMINAL, 3),
    ]
    for order in itertools.permutations(notes + notes[:2]):
        state, results = fold(order)
        assert state is not None
        assert (state.status, state.parts_delivered, state.conflict) == (
            S.DELIVERED_TO_TERMINAL,
            3,
            False,
        )
        assert sum(r.advanced for r in results) <= 3


def test_multipart_partial_after_final_is_stale() -> None:
    """A PartiallyDelivered arriving after the final DeliveredToTerminal changes nothing."""
    _, results = fold(
        [multipart(S.DELIVERED_TO_TERMINAL, None), multipart(S.PARTIALLY_DELIVERED, 2)]
    )
    assert (results[1].outcome, results[1].changed) == (M.STALE, False)


def test_multipart_parts_only_increase() -> None:
    """A PartiallyDelivered with fewer parts than stored is stale; with more, it advances."""
    _, results = fold(
        [
            multipart(S.PARTIALLY_DELIVERED, 2),
            multipart(S.PARTIALLY_DELIVERED, 1),
            multipart(S.PARTIALLY_DELIVERED, None),
            multipart(S.PARTIALLY_DELIVERED, 3),
        ]
    )
    assert [r.outcome for r in results] == [M.APPLIED, M.STALE, M.STALE, M.APPLIED]


# --- any order converges (property) -------------------------------------------------------------

# At most one distinct unknown string per sequence: between two unknowns the first stays, which
# is order-dependent by design (tested above). Senders and part counts are each one value or None.
CONVERGING_ITEMS = [item for item in ITEMS if item[0] != BAR]


@st.composite
def updates(draw: st.DrawFn) -> DeliveryUpdate:
    """One update over the converging items, with or without sender and part count."""
    item = draw(st.sampled_from(CONVERGING_ITEMS))
    return update(
        item,
        sender=draw(st.sampled_from([None, "tel:+32123"])),
        sms_parts=draw(st.sampled_from([None, 3])),
        source=draw(st.sampled_from(list(Source))),
    )


def summary(state: DeliveryState | None) -> tuple[object, ...]:
    """The parts of a state that must not depend on the order of arrival."""
    assert state is not None
    return (state.status, state.parts_delivered, state.conflict, state.sender, state.sms_parts)


def check_advances(results: Sequence[MergeResult]) -> None:
    """Every advance is a strict increase; anything else leaves the status where it was."""
    before: Item | None = None
    for result in results:
        after = (result.state.status, result.state.parts_delivered)
        if result.advanced:
            assert before is None or level(after) > level(before)
        elif before is not None:
            assert after[0] == before[0]
            assert after[1] == before[1] or is_final(after[0])
        before = after


@given(seq=st.lists(updates(), min_size=1, max_size=12), data=st.data())
def test_any_order_converges(seq: list[DeliveryUpdate], data: st.DataObject) -> None:
    """Any permutation of a sequence of updates (duplicates included) ends in the same state."""
    shuffled = data.draw(st.permutations(seq))
    state_a, results_a = fold(seq)
    state_b, results_b = fold(shuffled)
    assert summary(state_a) == summary(state_b)
    finals = {u.status for u in seq if is_final(u.status)}
    assert state_a is not None and state_a.conflict is (len(finals) >= 2)
    distinct = {(u.status, u.parts_delivered) for u in seq}
    for results in (results_a, results_b):
        check_advances(results)
        assert sum(r.advanced for r in results) <= len(distinct)


@given(seq=st.lists(updates(), min_size=1, max_size=12))
def test_converged_status_is_the_highest_seen(seq: list[DeliveryUpdate]) -> None:
    """The state ends on the highest status of the sequence (by rank, then precedence)."""
    state, _ = fold(seq)
    highest = max(((u.status, u.parts_delivered) for u in seq), key=level)
    assert state is not None and state.status == highest[0]


# --- new_update ----------------------------------------------------------------------------------


def _update_outcome(build: Any, fields: tuple[Any, ...]) -> tuple[str, object]:
    """What ``build(*fields)`` makes (its fields and type), or what it raises (type, field)."""
    try:
        built = build(*fields)
    except InvalidUpdateError as exc:
        return "refused", (type(exc), exc.field, str(exc))
    return "built", (type(built), attrs.astuple(built, recurse=False))


@given(
    fields=st.tuples(
        st.sampled_from(["req-1", "", " r", "r" * 300, 7]),
        st.sampled_from(["tel:+33612345678", "+33612345678", "0612", "tel:+0612", None]),
        st.sampled_from([*S, "DeliveredToTerminal", "Odd", "", 3]),
        st.sampled_from([*Source, "callback", "nope"]),
        st.sampled_from([None, 0, 2, -1, True, 10**9]),
        st.sampled_from([None, 1, 3, -2, 1.5]),
        st.sampled_from([None, 0, 2**31, False]),
        st.sampled_from([None, "tel:+3212345", "+3212345", "BICS", "tel:+0123", " "]),
        st.sampled_from([0.0, 1.5, 1, float("inf"), float("nan"), "1"]),
    )
)
def test_new_update_is_the_attrs_constructor(fields: tuple[Any, ...]) -> None:
    """The receiver's fast constructor builds what ``DeliveryUpdate(...)`` builds (canonical or
    normalised, frozen), and refuses what it refuses with the same error."""
    outcome = _update_outcome(new_update, fields)
    assert outcome == _update_outcome(DeliveryUpdate, fields)
    if outcome[0] == "built":
        built = new_update(*fields)
        assert built == DeliveryUpdate(*fields)
        assert hash(built) == hash(DeliveryUpdate(*fields))
        assert weakref.ref(built)() is built
        assert pickle.loads(pickle.dumps(built)) == built  # noqa: S301 - our own bytes
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            built.address = "x"  # type: ignore[misc]


# --- build_event ---------------------------------------------------------------------------------


@given(
    fields=st.tuples(
        st.text(max_size=4),
        st.text(max_size=4),
        st.text(max_size=4),
        st.sampled_from([*S, "Odd"]),
        st.sampled_from([None, *S]),
        st.sampled_from(Source),
        st.none() | st.integers(0, 9),
        st.none() | st.integers(1, 9),
        st.booleans(),
        st.floats(allow_nan=False),
    )
)
def test_build_event_is_the_attrs_constructor(fields: tuple[Any, ...]) -> None:
    """The stores' fast constructor builds exactly what ``DeliveryEvent(...)`` builds, as frozen."""
    built = build_event(*fields)
    assert type(built) is DeliveryEvent
    assert built == DeliveryEvent(*fields)
    assert hash(built) == hash(DeliveryEvent(*fields))
    assert attrs.astuple(built, recurse=False) == fields
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.cursor = "x"  # type: ignore[misc]
