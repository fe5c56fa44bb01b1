"""SMS segment counting of opensms_async._segments (GSM 03.38 / 3GPP TS 23.040)."""

from __future__ import annotations

import math

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from opensms_async._segments import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    SegmentCount,
    count_segments,
    is_gsm7,
)

# The basic table written out again, row by row as GSM 03.38 draws it (columns 0x00 to 0x70;
# 0x1B is the escape), so that the tests do not take the module's word for it.
BASIC_ROWS = [
    "@Δ 0¡P¿p",
    "£_!1AQaq",
    '$Φ"2BRbr',
    "¥Γ#3CScs",
    "èΛ¤4DTdt",
    "éΩ%5EUeu",
    "ùΠ&6FVfv",
    "ìΨ'7GWgw",
    "òΣ(8HXhx",
    "ÇΘ)9IYiy",
    "\nΞ*:JZjz",
    "Ø\x1b+;KÄkä",
    "øÆ,<LÖlö",
    "\ræ-=MÑmñ",
    "Åß.>NÜnü",
    "åÉ/?O§oà",
]
BASIC = set("".join(BASIC_ROWS)) - {"\x1b"} | {"ç"}
EXTENSION = set("\f^{}\\[~]|€")

gsm_basic_chars = st.sampled_from(sorted(BASIC))
gsm_chars = st.sampled_from(sorted(BASIC | EXTENSION | {"\t", "\b"}))
any_chars = gsm_chars | st.sampled_from(["Ж", "ó", "€", "😀", "𝄞", "\t", "\b"]) | st.characters()


def _normalised(text: str) -> str:
    return text.replace("\t", "    ").replace("\b", "")


def _costs(text: str) -> tuple[bool, list[int]]:
    """Whether the text is GSM-7, and the units each of its characters takes."""
    text = _normalised(text)
    if all(c in BASIC or c in EXTENSION for c in text):
        return True, [2 if c in EXTENSION else 1 for c in text]
    return False, [len(c.encode("utf-16-le", "surrogatepass")) // 2 for c in text]


def _reference(text: str) -> SegmentCount:
    """A literal greedy packing, one character at a time, never splitting a 2-unit character."""
    gsm, costs = _costs(text)
    single, part = (160, 153) if gsm else (70, 67)
    units = sum(costs)
    if units <= single:
        parts, per_part, used = (1 if units else 0), single, units
    else:
        parts, per_part, used = 1, part, 0
        for cost in costs:
            if used + cost > part:
                parts, used = parts + 1, 0
            used += cost
    encoding = "GSM-7" if gsm else "UCS-2"
    return SegmentCount(encoding, units, parts, per_part, per_part - used, len(text))


def test_tables_match_gsm_03_38() -> None:
    """The basic and extension tables are exactly those of GSM 03.38, with both ç and Ç."""
    assert all(len(row) == 8 for row in BASIC_ROWS)
    assert set(GSM7_BASIC) == BASIC
    assert len(BASIC) == 128  # 127 positions (escape excluded) plus the ç/Ç alias
    assert set(GSM7_EXTENSION) == EXTENSION


@pytest.mark.parametrize(
    ("length", "parts", "per_part", "remaining"),
    [(1, 1, 160, 159), (160, 1, 160, 0), (161, 2, 153, 145), (306, 2, 153, 0), (307, 3, 153, 152)],
)
def test_gsm7_boundaries(length: int, parts: int, per_part: int, remaining: int) -> None:
    """GSM-7 texts fit 160 septets in one SMS and 153 per part beyond that."""
    count = count_segments("a" * length)
    assert count == SegmentCount("GSM-7", length, parts, per_part, remaining, length)


@pytest.mark.parametrize(
    ("length", "parts", "per_part", "remaining"),
    [(1, 1, 70, 69), (70, 1, 70, 0), (71, 2, 67, 63), (134, 2, 67, 0), (135, 3, 67, 66)],
)
def test_ucs2_boundaries(length: int, parts: int, per_part: int, remaining: int) -> None:
    """UCS-2 texts fit 70 units in one SMS and 67 per part beyond that."""
    count = count_segments("Ж" * length)
    assert count == SegmentCount("UCS-2", length, parts, per_part, remaining, length)


def test_design_example() -> None:
    """The README's example: the euro sign is GSM-7 and costs two septets."""
    assert count_segments("Hello €") == SegmentCount("GSM-7", 8, 1, 160, 152, 7)


@pytest.mark.parametrize("char", sorted(EXTENSION))
def test_extension_chars_cost_two_septets(char: str) -> None:
    """Each extension-table character, form feed included, costs two septets."""
    count = count_segments("ab" + char)
    assert (count.encoding, count.units, count.characters) == ("GSM-7", 4, 3)


def test_extension_chars_fill_a_single_sms() -> None:
    """Eighty euro signs fill one SMS exactly; one more character needs a second part."""
    assert count_segments("€" * 80).parts == 1
    assert count_segments("€" * 80 + "a").parts == 2


def test_escape_pair_straddling_a_boundary_moves_to_next_part() -> None:
    """An escape pair that would straddle a part boundary moves whole, costing an extra part."""
    straddling = count_segments("a" * 152 + "€" + "a" * 152)
    assert straddling.units == 306
    assert (straddling.parts, straddling.remaining) == (3, 152)
    fitting = count_segments("a" * 151 + "€" + "a" * 153)
    assert fitting.units == 306
    assert (fitting.parts, fitting.remaining) == (2, 0)


def test_surrogate_pair_straddling_a_boundary_moves_to_next_part() -> None:
    """An emoji (two UTF-16 units) is never split across UCS-2 parts."""
    straddling = count_segments("Ж" * 66 + "😀" + "Ж" * 66)
    assert (straddling.encoding, straddling.units, straddling.characters) == ("UCS-2", 134, 133)
    assert (straddling.parts, straddling.remaining) == (3, 66)
    fitting = count_segments("Ж" * 65 + "😀" + "Ж" * 67)
    assert (fitting.parts, fitting.remaining) == (2, 0)


def test_emoji_count_two_utf16_units() -> None:
    """Characters above U+FFFF take two UTF-16 code units."""
    assert count_segments("😀" * 35) == SegmentCount("UCS-2", 70, 1, 70, 0, 35)
    assert count_segments("😀" * 36).parts == 2


def test_one_non_gsm_char_makes_the_whole_text_ucs2() -> None:
    """A single character outside GSM-7 switches the whole text to UCS-2 and its limits."""
    count = count_segments("a" * 100 + "ó")
    assert (count.encoding, count.units, count.parts) == ("UCS-2", 101, 2)


@pytest.mark.parametrize("char", ["ç", "Ç"])
def test_c_cedilla_is_gsm7_in_both_cases(char: str) -> None:
    """0x09 is accepted as both ç (Unicode's table) and Ç (ETSI's drawing)."""
    assert is_gsm7(char)
    assert count_segments("Ça va, garçon " + char).encoding == "GSM-7"


def test_tab_counts_as_four_spaces() -> None:
    """A tab is counted as the four spaces BICS sends in its place."""
    assert count_segments("a\tb") == SegmentCount("GSM-7", 6, 1, 160, 154, 3)
    assert count_segments("\t" * 40).parts == 1
    assert count_segments("\t" * 40 + "a").parts == 2
    assert count_segments("Ж\t").units == 5


def test_backspace_is_dropped() -> None:
    """A backspace costs nothing, since BICS drops it."""
    assert count_segments("ab\b") == SegmentCount("GSM-7", 2, 1, 160, 158, 3)
    assert is_gsm7("\b\t")


def test_empty_text_has_no_parts() -> None:
    """An empty text counts zero parts, with the whole single-SMS capacity free."""
    assert count_segments("") == SegmentCount("GSM-7", 0, 0, 160, 160, 0)
    assert count_segments("\b").parts == 0


def test_segment_count_is_frozen() -> None:
    """A SegmentCount cannot be changed after the fact."""
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        count_segments("hi").parts = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Hello", True), ("{[€]}", True), ("", True), ("Ж", False), ("😀", False), ("ó", False)],
)
def test_is_gsm7(text: str, expected: bool) -> None:
    """is_gsm7 tells whether a text can be sent in the 7-bit alphabet."""
    assert is_gsm7(text) is expected


@given(text=st.text(any_chars, max_size=400))
def test_matches_literal_greedy_packing(text: str) -> None:
    """Every field equals a character-by-character greedy packing of the text."""
    assert count_segments(text) == _reference(text)


@given(text=st.text(gsm_chars | st.sampled_from(["€", "{"]), min_size=300, max_size=700))
def test_long_gsm7_texts_match_literal_packing(text: str) -> None:
    """Long GSM-7 texts full of escape pairs pack exactly like the literal reference."""
    assert count_segments(text) == _reference(text)


@given(text=st.text(any_chars, max_size=350), char=any_chars)
def test_parts_never_decrease_when_appending(text: str, char: str) -> None:
    """Appending a character never lowers the number of parts."""
    assert count_segments(text + char).parts >= count_segments(text).parts


@given(n=st.integers(min_value=161, max_value=2000), data=st.data())
def test_basic_gsm7_parts_are_ceil_of_153(n: int, data: st.DataObject) -> None:
    """Without extension characters, a long GSM-7 text needs ceil(n / 153) parts."""
    text = data.draw(st.text(gsm_basic_chars, min_size=n, max_size=n))
    count = count_segments(text)
    assert (count.encoding, count.units) == ("GSM-7", n)
    assert count.parts == math.ceil(n / 153)


@given(text=st.text(any_chars, max_size=200))
def test_units_equal_independent_sum(text: str) -> None:
    """Units are septets (2 per extension char) for GSM-7, else UTF-16 code units."""
    gsm, costs = _costs(text)
    count = count_segments(text)
    assert count.units == sum(costs)
    if not gsm:
        assert count.units == len(_normalised(text).encode("utf-16-le", "surrogatepass")) // 2


@given(text=st.text(any_chars, max_size=200))
def test_encoding_is_ucs2_iff_a_char_is_outside_gsm7(text: str) -> None:
    """The encoding is UCS-2 exactly when some character is in neither GSM-7 table."""
    outside = any(c not in BASIC | EXTENSION | {"\t", "\b"} for c in text)
    assert (count_segments(text).encoding == "UCS-2") is outside
    assert is_gsm7(text) is not outside


@given(text=st.text(any_chars, max_size=400))
def test_counts_are_consistent(text: str) -> None:
    """Capacity, remaining space and units always add up."""
    count = count_segments(text)
    assert count.characters == len(text)
    assert 0 <= count.remaining <= count.per_part
    assert count.units + count.remaining <= count.parts * count.per_part or count.parts == 0
    assert count.per_part in ((160, 153) if count.encoding == "GSM-7" else (70, 67))
