"""Flat JSON objects written and read by hand, for the processes git starts on every call.

Importing ``json`` costs ~10 ms (it pulls in ``re``), more than the rest of the helper's work.
The messages on the hot path are flat objects of strings, integers, booleans and null, so these
two functions handle exactly that and return None for anything else; the caller then uses
``json``, which stays the authority: whatever ``loads`` accepts, ``json.loads`` reads the same.
"""

TYPE_CHECKING = False  # the typing module itself costs milliseconds on every git call
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Tuple

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b",
            "\f": "\\f"}
_UNESCAPES = {'"': '"', "\\": "\\", "/": "/", "n": "\n", "r": "\r", "t": "\t", "b": "\b",
              "f": "\f"}
_HEX = frozenset("0123456789abcdefABCDEF")


def _quote(text: str) -> str:
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return '"' + text + '"'
    out = []
    for ch in text:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code > 0xFFFF:  # as json's ensure_ascii: a surrogate pair
            code -= 0x10000
            out.append("\\u%04x\\u%04x" % (0xD800 | (code >> 10), 0xDC00 | (code & 0x3FF)))
        else:
            out.append("\\u%04x" % code)
    return '"' + "".join(out) + '"'


def dumps(message: "Dict[str, Any]") -> "Optional[str]":
    """``message`` as compact ASCII JSON, or None when it is not a flat object."""
    parts = []
    for key, value in message.items():
        if not isinstance(key, str):
            return None
        if isinstance(value, str):
            text = _quote(value)
        elif value is True or value is False:
            text = "true" if value else "false"
        elif value is None:
            text = "null"
        elif isinstance(value, int):
            text = str(int(value))
        else:
            return None  # floats, lists, objects: json spells them
        parts.append(_quote(key) + ":" + text)
    return "{" + ",".join(parts) + "}"


def _string(text: str, start: int) -> "Tuple[Optional[str], int]":
    """The string whose opening quote is at ``start``, and the index after its closing quote."""
    parts = []
    pos = start + 1
    while True:
        quote = text.find('"', pos)
        if quote == -1:
            return None, start
        backslash = text.find("\\", pos, quote)
        chunk = text[pos:quote if backslash == -1 else backslash]
        if chunk and not chunk.isprintable():
            return None, start  # control characters (invalid) and rarer cases: json decides
        parts.append(chunk)
        if backslash == -1:
            return "".join(parts), quote + 1
        escape = text[backslash + 1:backslash + 2]
        if escape in _UNESCAPES and escape:
            parts.append(_UNESCAPES[escape])
            pos = backslash + 2
        elif escape == "u" and len(text[backslash + 2:backslash + 6]) == 4 and all(
                ch in _HEX for ch in text[backslash + 2:backslash + 6]):
            code = int(text[backslash + 2:backslash + 6], 16)
            if 0xD800 <= code <= 0xDFFF:
                return None, start  # surrogate pairs: json joins them
            parts.append(chr(code))
            pos = backslash + 6
        else:
            return None, start


def _scalar(token: str) -> "Tuple[bool, Any]":
    if token == "true":
        return True, True
    if token == "false":
        return True, False
    if token == "null":
        return True, None
    digits = token[1:] if token.startswith("-") else token
    if digits.isascii() and digits.isdigit() and (digits == "0" or digits[0] != "0"):
        return True, int(token)
    return False, None  # floats, whitespace, nesting: json decides


def loads(text: str) -> "Optional[Dict[str, Any]]":
    """A flat JSON object read by hand; None for anything else (including invalid JSON)."""
    if len(text) < 2 or text[0] != "{" or text[-1] != "}":
        return None
    out: "Dict[str, Any]" = {}
    end = len(text) - 1
    pos = 1
    if pos == end:
        return out
    while True:
        if text[pos] != '"':
            return None
        key, pos = _string(text, pos)
        if key is None or pos >= end or text[pos] != ":":
            return None
        pos += 1
        if pos < end and text[pos] == '"':
            value, pos = _string(text, pos)
            if value is None:
                return None
        else:
            stop = pos
            while stop < end and text[stop] != ",":
                stop += 1
            ok, value = _scalar(text[pos:stop])
            if not ok:
                return None
            pos = stop
        out[key] = value
        if pos == end:
            return out
        if text[pos] != ",":
            return None
        pos += 1
        if pos >= end:
            return None
