"""The plain TOML that config files are made of, read in one pass, for configs of many routes.

``tomllib`` is a pure-Python parser: 10,000 ``[[routes]]`` take it about 600 ms, most of the
daemon's start. Config files use a small part of TOML, so ``loads`` reads exactly that part and
returns None for anything else; the caller then uses ``tomllib``, which stays the authority:
whatever ``loads`` accepts, ``tomllib.loads`` reads the same, and every document ``tomllib``
rejects is None here, so its error (with its line number) is the one a person sees.

The part read here, line by line: blank lines and ``#`` comments; ``[a.b]`` and ``[[a.b]]``
headers of bare keys; ``key = value`` with one bare key; values that are basic strings without
escapes, literal strings, ``true``/``false``, decimal integers, and one-line arrays of those.
"""

import re
from typing import Any, Dict, Optional, Set, Tuple

# Whitespace is space and tab only (not str.isspace's Unicode spaces). Control characters other
# than tab are read nowhere, so they, a lone CR and a BOM all send the document to tomllib.
_KEY = r"[A-Za-z0-9_-]+"
_BASIC = r'[^"\\\x00-\x08\x0a-\x1f\x7f-\x9f]*'  # between the quotes
_LITERAL = r"[^'\x00-\x08\x0a-\x1f\x7f-\x9f]*"
# 18 digits fit in 64 bits, the range TOML promises; longer numbers are tomllib's to judge.
_INT = r"-?(?:0|[1-9][0-9]{0,17})"
# Groups: the contents of a basic string, a literal string, a boolean, an integer.
_SCALAR = rf"\"({_BASIC})\"|'({_LITERAL})'|(true|false)|({_INT})"
_ANY = rf"\"{_BASIC}\"|'{_LITERAL}'|true|false|{_INT}"
_ARRAY = rf"(\[[ \t]*(?:(?:{_ANY})[ \t]*,[ \t]*)*(?:(?:{_ANY})[ \t]*)?\])"
_END = r"[ \t]*(?:#[^\x00-\x08\x0a-\x1f\x7f-\x9f]*)?\r?\Z"
# Groups: 1 key, then the value: 2 basic string, 3 literal string, 4 boolean, 5 integer, 6 array.
_KEY_VALUE = re.compile(rf"[ \t]*({_KEY})[ \t]*=[ \t]*(?:{_SCALAR}|{_ARRAY}){_END}")
_HEADER = re.compile(rf"[ \t]*(\[\[?)[ \t]*({_KEY}(?:[ \t]*\.[ \t]*{_KEY})*)[ \t]*(\]\]?){_END}")
_BLANK = re.compile(_END)
# In an array _ARRAY matched, each item in turn (nothing between items can start one), with the
# groups of _SCALAR.
_ITEM = re.compile(_SCALAR)
_Line = Tuple[Optional[str], Any]  # (key, value), (None, ("[" or "[[", keys)) or (None, None)


def _scalar(basic: Optional[str], literal: Optional[str], boolean: Optional[str],
            integer: Optional[str]) -> Any:
    if basic is not None:
        return basic
    if literal is not None:
        return literal
    if boolean is not None:
        return boolean == "true"
    return int(integer or "")


def _line(line: str) -> Optional[_Line]:
    found = _KEY_VALUE.match(line)
    if found is not None:
        key, basic, literal, boolean, integer, array = found.groups()
        if array is None:
            return key, _scalar(basic, literal, boolean, integer)
        return key, [_scalar(*item.groups()) for item in _ITEM.finditer(array)]
    found = _HEADER.match(line)
    if found is not None:
        opening, dotted, closing = found.groups()
        if len(opening) != len(closing):
            return None
        return None, (opening, tuple(key.strip(" \t") for key in dotted.split(".")))
    return (None, None) if _BLANK.match(line) else None


def loads(text: str) -> Optional[Dict[str, Any]]:
    """The document as ``tomllib.loads`` reads it, or None when it is outside the part read here."""
    if text.endswith("\r"):
        return None  # a CR not followed by LF
    root: Dict[str, Any] = {}
    table = root
    # Tables a [header] named, and the lists [[headers]] made (any other list is a value): TOML
    # lets a header name a table once, and [[x]] extend only a list that [[x]] began.
    named: Set[int] = set()
    made: Set[int] = set()
    # Config lines repeat (10,000 routes share a few accounts and scopes): each is read once.
    seen: Dict[str, Optional[_Line]] = {}
    for line in text.split("\n"):
        if not line:
            continue
        if line in seen:
            parsed = seen[line]
        else:
            parsed = seen[line] = _line(line)
        if parsed is None:
            return None
        key, value = parsed
        if key is not None:
            if key in table:
                return None
            table[key] = value[:] if type(value) is list else value
            continue
        if value is None:
            continue
        kind, keys = value
        parent = root
        for key in keys[:-1]:
            child = parent.get(key)
            if child is None:
                child = parent[key] = {}
            elif type(child) is list:
                if id(child) not in made:
                    return None  # a value's array: tomllib calls it immutable
                child = child[-1]  # [a.b] after [[a]] is inside a's last table
            elif type(child) is not dict:
                return None
            parent = child
        last = keys[-1]
        child = parent.get(last)
        if kind == "[[":
            if child is None:
                child = parent[last] = []
                made.add(id(child))
            elif type(child) is not list or id(child) not in made:
                return None
            table = {}
            child.append(table)
        else:
            if child is None:
                child = parent[last] = {}
            elif type(child) is not dict or id(child) in named:
                return None  # a value, a [[list]], or a table declared twice
            named.add(id(child))
            table = child
    return root
