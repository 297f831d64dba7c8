"""Measuring JSON on its bytes (`json_extent`): the same depths and member texts a
decoder sees, at any depth, for any bytes, in one pass."""

import json
import time
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from shared.contract.json_extent import member_value, members, nesting

# Strings full of what reads as structure outside a string.
tricky_text = st.text(st.sampled_from([*'ab"\\[]{},: \n\x00é😀']), max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(-1e300, 1e300)
    | tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=12,
)  # fmt: skip


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


def encodings(value: Any) -> list[bytes]:
    return [
        orjson.dumps(value),
        json.dumps(value).encode(),
        json.dumps(value, indent=2, ensure_ascii=False).encode(),
    ]


@given(json_values)
def test_nesting_is_the_depth_a_decoder_sees(value: Any) -> None:
    for raw in encodings(value):
        assert nesting(raw) == depth_of(value), raw


@given(st.dictionaries(tricky_text, json_values, max_size=4))
def test_members_are_the_values_a_decoder_sees_with_their_text(record: dict[str, Any]) -> None:
    for raw in encodings(record):
        found = members(raw)
        assert found.keys() == record.keys(), raw
        for name, member in found.items():
            assert orjson.loads(member.text) == record[name], raw
            assert member.depth == depth_of(record[name]), raw
    compact = members(orjson.dumps(record))
    assert {n: m.text for n, m in compact.items()} == {
        n: orjson.dumps(v) for n, v in record.items()
    }


def test_a_name_given_twice_counts_as_its_last_and_escaped_names_are_read() -> None:
    raw = b'{"a": 1, "evid\\u0065nce": {"x": 1}, "a": [[2]] }'
    assert orjson.loads(raw) == {"a": [[2]], "evidence": {"x": 1}}
    found = members(raw)
    assert found["a"].text == b"[[2]]"
    assert found["a"].depth == 2
    assert found["evidence"].depth == 1


def test_a_member_is_read_however_deep_the_record_nests() -> None:
    raw = b'{"request_id": "r1", "message": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert nesting(raw) == 5001
    assert members(raw)["message"].depth == 5000
    assert member_value(raw, "request_id") == "r1"
    assert member_value(raw, "message") is None  # too deep to decode itself


@given(st.binary(max_size=64) | json_values.map(orjson.dumps).map(lambda raw: raw[:-1]))
def test_any_bytes_are_measured_without_raising(raw: bytes) -> None:
    nesting(raw)
    for name in members(raw):
        member_value(raw, name)


def test_unterminated_strings_cost_one_pass() -> None:
    """A backtracking string pattern takes minutes over these megabytes."""
    for raw in (b'"' + b'\\"' * 500_000, b'{"a":"' + b"\\" * 1_000_000, b'"[' * 500_000):
        started = time.perf_counter()
        nesting(raw)
        members(b"{" + raw)
        assert time.perf_counter() - started < 5
