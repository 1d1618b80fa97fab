"""The one-pass TOML reader agrees with tomllib, or steps aside for it; and it reads our configs."""

import random
import re
from pathlib import Path
from typing import Any, List, Optional

import pytest

from credhelper import fasttoml
from credhelper.commands.init import render_config
from credhelper.config import tomllib
from harness import config_text, scale_routes

ROOT = Path(__file__).resolve().parents[1]


def same(a: Any, b: Any) -> bool:
    """Equal with types: ``True == 1`` and ``{"a": 1} == {"a": True}`` must not pass."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def tomllib_reads(doc: str) -> Optional[dict]:
    try:
        return tomllib.loads(doc)
    except tomllib.TOMLDecodeError:
        return None


def check(doc: str) -> Optional[dict]:
    """Assert the contract on ``doc``; what fasttoml returned."""
    fast = fasttoml.loads(doc)
    slow = tomllib_reads(doc)
    if slow is None:
        assert fast is None, f"tomllib rejects {doc!r} but fasttoml read {fast!r}"
    elif fast is not None:
        assert same(fast, slow), f"{doc!r}: fasttoml {fast!r} != tomllib {slow!r}"
    return fast


# Documents inside the subset: fasttoml must read each, as tomllib does.
READ = [
    "",
    "\n\n",
    "# only a comment",
    "a = 1",
    "a = 1\n",
    "a = 1\r\nb = 2\r\n",
    "  a=1   # indented, no spaces around =",
    "\ta\t=\t'tabbed'\t",
    'a = "x # not a comment" # a comment',
    'a = ""',
    "a = ''",
    "a = 'C:\\path\\with\\backslashes'",
    'a = "tab\tinside"',
    'a = "ünïcödé ✓ 😀"',
    "a = 0\nb = -0\nc = -17\nd = 123456789012345678",
    "a = true\nb = false",
    "bare-key_9 = 1\n1234 = 2\ntrue = 3\n-x- = 4",
    "a = []",
    "a = [ ]",
    "a = [1, 2, 3,]",
    "a = [ 'x' , \"y\" ,true,false , -1 ]",
    'a = ["x,]", "[y]", \'#z\']',
    'a = [""]',
    "a = 1 #",
    "[t]",
    "[t]\n[u]\n[v.w]",
    "[ a . b ]\nx = 1",
    "[a.b]\nx = 1\n[a]\ny = 2",  # TOML lets [a] follow [a.b]
    "[a.b]\n[a.c]\n[a]",
    "[[a]]\n[[a]]\nx = 1\n[[a]]",
    "[[a]]\nx = 1\n[a.b]\ny = 2\n[[a]]\n[a.b]\ny = 3",  # [a.b] is in a's last table
    "[[a.b]]\n[[a.b]]\n[a]\nc = 1",
    "[a]\n[[a.b]]\n[a.b.c]\nd = 1\n[[a.b]]\n[a.b.c]",
    "[[a]]\n[[a.b]]\n[[a.b]]\n[[a]]\n[[a.b]]",
    "x = 1\n[a]\nx = 2\n[b]\nx = 3",
    "[[ routes ]]\nurl = 'u'",
    "[accounts.svc-0]\nflow = \"device_code\"",
]

# Documents outside the subset, valid TOML all the same: tomllib reads them, fasttoml steps aside.
STEPS_ASIDE = [
    '"quoted" = 1',
    "'quoted' = 1",
    "a.b = 1",
    "a . b = 1",
    '["quoted"]',
    "[a.'b']",
    'a = "esc\\"aped"',
    'a = "\\u00e9"',
    'a = """multi\nline"""',
    'a = """one line"""',
    "a = '''literal'''",
    "a = { b = 1 }",
    "a = {}",
    "a = [[1], [2]]",
    "a = [{ b = 1 }]",
    "a = [\n  1,\n]",
    "a = [1, # comment\n 2]",
    "a = 1.5",
    "a = 1e3",
    "a = inf",
    "a = nan",
    "a = +1",
    "a = 1_000",
    "a = 0x1f",
    "a = 0o17",
    "a = 0b11",
    "a = 1234567890123456789",
    "a = 1979-05-27",
    "a = 1979-05-27T07:32:00Z",
    "a = 07:32:00",
    "a = 'x' # comment with \x85 (C1)",
    'a = "\x85"',
]

# Not TOML: tomllib raises, so fasttoml must return None.
INVALID = [
    "a",
    "a =",
    "= 1",
    "a = 1 2",
    "a = 1\na = 2",                     # duplicate key
    "a = 1\na=1",
    "[t]\nx = 1\nx = 1",
    "[t]\n[t]",                         # a table declared twice
    "[a.b]\n[a]\n[a]",
    "[a]\n[a.b]\n[a.b]",
    "[[a]]\n[a]",                       # [a] after [[a]]
    "[a]\n[[a]]",                       # [[a]] where a is a plain table
    "a = []\n[[a]]",                    # [[a]] where a is a static array
    "a = [1]\n[[a]]",
    "a = [1]\n[a]",
    "a = []\n[a.b]",
    "a = ['x']\n[a.b]",
    "[t]\nx = []\n[[t.x]]",
    "[a.b]\n[a]\nb = 1",                # a key that names an existing table
    "[[a.b]]\n[a]\nb = 1",
    "[a]\nb = 1\n[a.b]",                # descending through a non-table
    "a = 1\n[a.b]",
    "a = 'x'\n[a]",
    "[a]\nb = 1\n[[a.b]]",
    "[[a]]\nb = 1\n[a.b]",
    "[[a]]\n[a.b]\n[a.b]",
    "[[a.b]]\n[a.b]",
    "[a.b]\n[[a.b]]",
    "[]",
    "[[]]",
    "[a",
    "[a]]",
    "[[a]",
    "[ [a]]",
    "[a] x",
    "[a.]",
    "[.a]",
    "[a..b]",
    "a = 01",
    "a = -01",
    "a = 00",
    "a = True",
    "a = tru",
    "a = truex",
    "a = [1 2]",
    "a = [,]",
    "a = [1,,]",
    "a = [",
    "a = ]",
    'a = "unterminated',
    "a = 'unterminated",
    'a = "bad\\escape"',
    'a = "a"b"',
    'a = "ctrl\x01"',
    "a = 'ctrl\x1f'",
    "a = 'del\x7f'",
    "a = 1 # ctrl\x00 in a comment",
    "# ctrl \x08 in a comment",
    "a = 1\rb = 2",                     # a lone CR
    "a = 1\r",
    "a = 1\r\r\n",
    "\ufeffa = 1",                      # a BOM
    "a = 1\x0b",
    "a = 1\x0c",
    "a.b = 1\na = 2",
    "a = 1 = 2",
    "a b = 1",
    "é = 1",
    "a = 'x\ny'",
]


@pytest.mark.parametrize("doc", READ)
def test_reads_the_subset_as_tomllib_does(doc: str) -> None:
    assert check(doc) is not None


@pytest.mark.parametrize("doc", STEPS_ASIDE)
def test_steps_aside_for_the_rest_of_toml(doc: str) -> None:
    assert tomllib_reads(doc) is not None, "the case is meant to be valid TOML"
    assert fasttoml.loads(doc) is None


@pytest.mark.parametrize("doc", INVALID)
def test_never_reads_what_tomllib_rejects(doc: str) -> None:
    assert tomllib_reads(doc) is None, "the case is meant to be invalid TOML"
    assert fasttoml.loads(doc) is None


def test_the_arrays_and_tables_it_returns_are_its_own() -> None:
    # Repeated lines are read once: the lists they give must still be separate objects.
    doc = fasttoml.loads("[[r]]\ns = ['x']\n[[r]]\ns = ['x']")
    assert doc is not None
    doc["r"][0]["s"].append("y")
    assert doc["r"][1]["s"] == ["x"]


# Random documents from a few keys (so conflicts are frequent) and line fragments inside and
# outside the subset.
KEYS = ["a", "b", "c"]
VALUES = ['"s"', "'l'", '""', "true", "false", "0", "-7", "42", "[]", "[1, 'x', true,]",
          '["a", "b"]', '"x#y"', "[ ]"]
BAD_VALUES = ["01", "1.0", "+1", "1_0", '"e\\n"', "'''m'''", "{ x = 1 }", "[[1]]", "[1,,]",
              "tru", '"x', "1979-05-27", "[1 2]", "[", "inf", '"\x01"', "'\x7f'"]


def random_key(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.9:
        return rng.choice(KEYS)
    return rng.choice(['"a"', "a.b", "'b'", "a-1", "é", ""])


def random_dotted(rng: random.Random) -> str:
    keys = [rng.choice(KEYS) for _ in range(rng.choice([1, 1, 1, 2, 2, 3]))]
    if rng.random() < 0.05:
        keys.append(random_key(rng))
    return rng.choice([".", " . "]).join(keys)


def random_line(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.1:
        return rng.choice(["", "  ", "# note", "\t# note \t"])
    if roll < 0.3:
        return f"[{random_dotted(rng)}]"
    if roll < 0.5:
        return f"[[{random_dotted(rng)}]]"
    if roll < 0.52:
        return rng.choice(["[a", "[[a]", "[a]]", "[]", "[ [a]]", "[a] b"])
    value = rng.choice(BAD_VALUES) if rng.random() < 0.08 else rng.choice(VALUES)
    line = f"{random_key(rng)}{rng.choice([' = ', '=', ' =  '])}{value}"
    if rng.random() < 0.1:
        line += rng.choice([" # c", "  #", "\t# x = 1"])
    return line


def random_doc(rng: random.Random) -> str:
    lines = [random_line(rng) for _ in range(rng.randint(0, 8))]
    end = "\r\n" if rng.random() < 0.2 else "\n"
    doc = end.join(lines)
    if rng.random() < 0.03:
        spot = rng.randint(0, len(doc))
        doc = doc[:spot] + rng.choice(["\r", "\x00", "\x1b", "\ufeff", "\x7f"]) + doc[spot:]
    return doc


@pytest.mark.parametrize("seed", range(10))
def test_random_documents_agree_with_tomllib(seed: int) -> None:
    rng = random.Random(seed)
    read = valid = 0
    for _ in range(400):
        doc = random_doc(rng)
        if check(doc) is not None:
            read += 1
        valid += tomllib_reads(doc) is not None
    # the generator must reach all three outcomes, or it tests little
    assert read > 100 and valid - read > 5 and 400 - valid > 100, (read, valid)


# Characters that matter to TOML (or to the subset's edges), for mutating the READ documents.
MUTATIONS = list("ab1-_.=#[]\"' \t,\n\r\\{}0e+:") + [
    "\x00", "\x85", "é", "\ufeff", '"""', "'''", "[[", "]]"]


@pytest.mark.parametrize("seed", range(10))
def test_mutated_documents_agree_with_tomllib(seed: int) -> None:
    rng = random.Random(seed)
    read = 0
    for _ in range(300):
        doc = rng.choice([doc for doc in READ if doc])
        for _ in range(rng.randint(1, 3)):
            spot = rng.randint(0, len(doc))
            roll = rng.random()
            if roll < 0.4:
                doc = doc[:spot] + rng.choice(MUTATIONS) + doc[spot:]
            elif roll < 0.7:
                doc = doc[:spot] + doc[spot + 1:]
            else:
                doc = doc[:spot] + rng.choice(MUTATIONS) + doc[spot + 1:]
        read += check(doc) is not None
    assert 20 < read < 280, read  # both outcomes are reached


INIT_CHOICES: List[dict] = [
    {"azure_devops": "contoso", "tenant": "contoso.onmicrosoft.com", "client_id": "app"},
    {"gitpod": True, "tenant": "contoso", "client_id": "fed-app"},
    {"ona": True, "tenant": "contoso", "client_id": "fed-app", "azure_devops": "contoso"},
    {"device_code": True, "tenant": "contoso", "client_id": "app",
     "ca_bundle": "/etc/ssl/corp.pem"},
    {"tenant": "contoso", "client_id": "app", "authority": "https://127.0.0.1:8443/tenant",
     "urls": ["https://pkgs.example.com/feed/", "https://git.example.com/"],
     "scopes": ["api://feed/.default", "api://other/.default"]},
    {"tenant": "contoso", "client_id": "app", "urls": ["https://dev.azure.com/contoso/"]},
]


@pytest.mark.parametrize("choices", INIT_CHOICES)
def test_reads_every_config_credhelper_init_writes(choices: dict) -> None:
    text = render_config(**choices)
    assert check(text) is not None, "the fast path would not be used for this config"


def readme_configs() -> List[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```toml\n(.*?)```", readme, flags=re.S)


def test_reads_the_readmes_example_configs() -> None:
    blocks = readme_configs()
    assert len(blocks) >= 3
    for block in blocks:
        assert check(block) is not None, block


def test_reads_the_benchmarks_ten_thousand_routes() -> None:
    accounts = {"svc0": {"authority": "https://127.0.0.1:1/tenant", "client_id": "secret-app",
                         "flow": "client_secret", "client_secret_env": "CREDHELPER_BENCH_SECRET",
                         "ca_bundle": "/tmp/emulator/ca.pem"}}
    text = config_text(accounts, scale_routes("https://127.0.0.1:2/feeds", 1, 10_000))
    doc = check(text)
    assert doc is not None
    assert len(doc["routes"]) == 10_000
