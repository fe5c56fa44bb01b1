"""The pure shortcuts on the path of every send give exactly what they replace (issue 12 item 3)."""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opensms_async import _json
from opensms_async._addressing import sender_path_segment
from opensms_async._ids import new_correlator
from opensms_async._segments import GSM7_BASIC, GSM7_EXTENSION, count_parts, count_segments

# Texts mixing GSM-7 basic and extension characters, tabs and backspaces (which BICS rewrites),
# other BMP characters and astral ones (two UTF-16 units), around the 35/70/80/160 boundaries.
_CHARS = st.sampled_from(
    [*sorted(GSM7_BASIC)[:40], *sorted(GSM7_EXTENSION), "\t", "\b", "é", "中", "😀", "€"]
)
_TEXTS = st.one_of(st.text(_CHARS, max_size=400), st.text(max_size=200))


@given(_TEXTS)
def test_count_parts_is_the_parts_of_count_segments(text: str) -> None:
    """The part count the send result reports is count_segments' for every text."""
    assert count_parts(text) == count_segments(text).parts


def test_count_parts_at_the_boundaries() -> None:
    """One part up to 160 GSM-7 units, two past it; escapes and emoji counted as two units."""
    for text in ("a" * 160, "a" * 161, "€" * 80, "€" * 81, "😀" * 35, "😀" * 36, "\t" * 40):
        assert count_parts(text) == count_segments(text).parts


def test_a_new_correlator_is_a_version_4_uuid() -> None:
    """Each generated clientCorrelator reads as a random (version 4, RFC 4122) UUID, as before."""
    seen = {new_correlator() for _ in range(2000)}
    assert len(seen) == 2000
    for text in seen:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


@given(st.one_of(st.from_regex(r"tel:\+?[0-9]{0,15}", fullmatch=True), st.text(max_size=30)))
def test_the_sender_path_segment_is_its_percent_encoding(sender: str) -> None:
    """A sender goes into the URL path percent-encoded exactly as quote(sender, safe='') does."""
    try:
        expected = quote(sender, safe="")
    except UnicodeEncodeError:
        return  # a lone surrogate: normalize_sender refuses it before any path is built
    assert sender_path_segment(sender) == expected


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_JSON)
def test_json_dumps_is_the_standard_encoding(value: object) -> None:
    """The client's JSON encoder (the C encoder built once) writes what
    ``json.dumps(value, ensure_ascii=False).encode()`` writes, NaN and non-ASCII text included."""
    assert _json.dumps(value) == json.dumps(value, ensure_ascii=False).encode()


def test_json_dumps_refuses_what_json_dumps_refuses() -> None:
    """A value JSON cannot hold raises json.dumps' TypeError, with its words."""
    for value in ({"a": object()}, [b"bytes"], {("a",): 1}):
        with pytest.raises(TypeError) as expected:
            json.dumps(value, ensure_ascii=False)
        with pytest.raises(TypeError, match=re.escape(str(expected.value))):
            _json.dumps(value)
