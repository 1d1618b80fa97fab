"""The hand-written flat JSON codec agrees with json, or steps aside for it."""

import json
import random

import pytest

from credhelper import flatjson

ALPHABET = ['a', 'Z', '0', ' ', '"', '\\', '/', '\n', '\r', '\t', '\x00', '\x1f', '\x7f', 'é',
            '\u2028', '\ud800', '\U0001f600', ':', ',', '{', '}', '[', ']']


def random_text(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12)))


def random_value(rng: random.Random) -> object:
    kind = rng.randint(0, 5)
    if kind == 0:
        return rng.choice([True, False, None])
    if kind == 1:
        return rng.randint(-10**12, 10**12)
    return random_text(rng)


@pytest.mark.parametrize("seed", range(20))
def test_dumps_matches_json_and_loads_reads_json(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(200):
        message = {random_text(rng): random_value(rng) for _ in range(rng.randint(0, 6))}
        ours = flatjson.dumps(message)
        theirs = json.dumps(message, separators=(",", ":"), ensure_ascii=True)
        assert ours == theirs
        read = flatjson.loads(theirs)
        assert read is None or read == json.loads(theirs)
        if "\ud800" not in theirs and "\\ud" not in theirs:
            assert read == message  # no surrogates: the hand reader takes it all


def test_a_token_reply_is_read_by_hand() -> None:
    reply = {"ok": True, "username": "entra", "token": "eyJ" + "x" * 2000, "expires_on": 1795000000,
             "account": "work"}
    assert flatjson.loads(json.dumps(reply, separators=(",", ":"))) == reply


@pytest.mark.parametrize("text", [
    '', '{', '}', '[]', '{"a":1,}', '{"a":01}', '{"a":-}', '{"a":1.5}', '{"a":[1]}', '{"a":{}}',
    '{"a" :1}', '{ "a":1}', '{"a":1 }', '{"a":tru}', '{"a":"x\\q"}', '{"a":"\\u12"}',
    '{"a":"\x01"}', '{a:1}', '{"a":"b"c}', '{"a":1}x', '{"a":"\\ud83d\\ude00"}', '{"a" "b"}',
    '{"a":"unterminated}', '{"a":nulls}', '{"a":"x",,"b":1}', '{"a":1e5}', '{"a":+1}',
])
def test_anything_else_is_left_to_json(text: str) -> None:
    read = flatjson.loads(text)
    if read is not None:  # only when json agrees exactly
        assert read == json.loads(text)


def test_nested_or_float_messages_are_left_to_json() -> None:
    assert flatjson.dumps({"a": [1]}) is None
    assert flatjson.dumps({"a": 1.5}) is None
    assert flatjson.dumps({1: "a"}) is None
