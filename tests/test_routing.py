"""The security boundary: which URL may receive which identity's token (DESIGN §6.2, §6.3)."""

import random
import string
from urllib.parse import quote

import pytest

from credhelper.config import Route
from credhelper.errors import AmbiguousRoute, ConfigError, NoRoute, RequestError
from credhelper.routing import Router, Target, canonical

from hostile_urls import HOSTILE_URLS, ROUTE_URL

CONTOSO = Route(ROUTE_URL, "work", ("ado/.default",), "work")


def route(url: str, account: str = "work", scopes=("ado/.default",)) -> Route:
    return Route(url, account, tuple(scopes), account)


@pytest.fixture
def router() -> Router:
    return Router([CONTOSO])


def test_hostile_table_is_big_enough():
    assert len(HOSTILE_URLS) >= 30 and len(set(HOSTILE_URLS)) == len(HOSTILE_URLS)


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_hostile_urls_get_nothing(router, url):
    with pytest.raises((NoRoute, RequestError)) as info:
        router.resolve(url)
    message = info.value.message
    assert len(message) < 250 and "\n" not in message and "\r" not in message
    assert "pw@" not in message


@pytest.mark.parametrize("url", [
    "HTTPS://DEV.AZURE.COM/contoso/",
    "https://dev.azure.com:443/contoso/x",
    "https://dev.azure.com/contoso",
    "https://dev.azure.com/contoso/proj/_git/repo",
    "https://dev.azure.com/%63ontoso/x",
    "https://dev.azure.com/contoso/./x",
    "https://dev.azure.com/other/../contoso/x",
    "https://dev.azure.com/contoso//x",
    "https://dev.azure.com./contoso/x",
    "https://dev.azure.com/contoso/My%20Project/_git/r",
    "https://dev.azure.com/contoso/x?service=git-upload-pack",
    "https://dev.azure.com",
    "https://dev.azure.com/",
])
def test_equivalent_spellings_match(router, url):
    assert router.resolve(url) is CONTOSO


def test_canonical_parts():
    assert canonical("HTTPS://Dev.Azure.COM:8443/a/%62/./c/../d/") == Target(
        "https", "dev.azure.com", 8443, ("a", "b", "d"))
    assert canonical("https://dev.azure.com").path is None
    assert canonical("https://dev.azure.com/").path is None
    assert canonical("https://dev.azure.com/a/..").path is None
    assert canonical("https://b\u00fccher.example/").host == "xn--bcher-kva.example"
    assert canonical("https://[::1]:8443/x").origin == "https://[::1]:8443"
    assert canonical("https://dev.azure.com:443/").origin == "https://dev.azure.com"


def test_http_is_no_route_with_a_clear_message():
    with pytest.raises(NoRoute, match="plain http never gets a token"):
        canonical("http://dev.azure.com/contoso/")


def test_long_input_is_not_echoed():
    with pytest.raises(RequestError) as info:
        canonical("https://dev.azure.com/" + "x" * 20000)
    assert len(info.value.message) < 200


def test_userinfo_and_query_are_masked_in_messages(router):
    with pytest.raises(RequestError) as info:
        router.resolve("https://alice:s3cr3t-pat@dev.azure.com/contoso/")
    assert "s3cr3t" not in info.value.message and "***@" in info.value.message
    with pytest.raises(RequestError) as info:
        router.resolve("https://dev.azure.com/contoso/\n?access_token=s3cr3t")
    assert "s3cr3t" not in info.value.message


def test_longest_prefix_wins():
    general = route("https://dev.azure.com/", "general")
    repo = route("https://dev.azure.com/contoso/proj/_git/secret", "secret")
    router = Router([general, CONTOSO, repo])
    assert router.resolve("https://dev.azure.com/contoso/proj/_git/secret/info/refs") is repo
    assert router.resolve("https://dev.azure.com/contoso/proj/_git/secret2") is CONTOSO
    assert router.resolve("https://dev.azure.com/fabrikam/x") is general


def test_host_only_request_is_ambiguous_when_identities_differ():
    router = Router([CONTOSO, route("https://dev.azure.com/fabrikam/", "other")])
    with pytest.raises(AmbiguousRoute, match="run `credhelper configure git`"):
        router.resolve("https://dev.azure.com")
    assert router.resolve("https://dev.azure.com/fabrikam/r").account == "other"


def test_host_only_request_is_ambiguous_when_scopes_differ():
    router = Router([CONTOSO, route("https://dev.azure.com/fabrikam/", scopes=["x/.default"])])
    with pytest.raises(AmbiguousRoute):
        router.resolve("https://dev.azure.com/")


def test_host_only_request_matches_when_all_routes_agree():
    fabrikam = route("https://dev.azure.com/fabrikam/")
    router = Router([CONTOSO, fabrikam])
    assert router.resolve("https://dev.azure.com").account == "work"


def test_port_and_host_are_exact():
    local = route("https://localhost:8443/feed/")
    router = Router([local])
    assert router.resolve("https://LOCALHOST:8443/feed/x") is local
    for url in ("https://localhost/feed/", "https://localhost:8444/feed/",
                "https://127.0.0.1:8443/feed/", "https://localhost.:8443/other/"):
        with pytest.raises(NoRoute):
            router.resolve(url)


def test_idna_route_matches_either_spelling():
    books = route("https://b\u00fccher.example/")
    router = Router([books])
    assert router.resolve("https://xn--bcher-kva.example/x") is books
    assert router.resolve("https://B\u00dcCHER.example/x") is books


def test_duplicate_routes_are_a_config_error():
    with pytest.raises(ConfigError, match="listed twice"):
        Router([CONTOSO, route("https://DEV.azure.com:443/contoso")])


def test_origins_hosts_and_needs_path():
    router = Router([
        CONTOSO, route("https://dev.azure.com/fabrikam/", "other"),
        route("https://pkgs.example/"), route("https://feed.example:8443/"),
        route("https://scoped.example/only/"),
    ])
    assert router.origins() == ["https://dev.azure.com", "https://feed.example:8443",
                                "https://pkgs.example", "https://scoped.example"]
    assert ("feed.example", 8443) in router.hosts()
    assert router.needs_path("https://dev.azure.com")
    assert router.needs_path("https://scoped.example")
    assert not router.needs_path("https://pkgs.example")


# Property-style checks: seeded, so a failure reproduces.

SAFE = string.ascii_letters + string.digits + "-_~!$&'()*+,;=:@ "


def random_segment(rng: random.Random) -> str:
    segment = "".join(rng.choice(SAFE) for _ in range(rng.randint(1, 12)))
    return segment if segment.strip(".") else segment + "x"


def encode_some(rng: random.Random, segment: str) -> str:
    return "".join(quote(ch, safe="") if rng.random() < 0.3 or ch == " " else ch
                   for ch in segment)


def test_random_paths_under_the_prefix_match_and_others_do_not(router):
    rng = random.Random(1234)
    for _ in range(500):
        segments = [random_segment(rng) for _ in range(rng.randint(0, 6))]
        path = "/".join(encode_some(rng, s) for s in segments)
        assert router.resolve(f"https://dev.azure.com/contoso/{path}") is CONTOSO
        first = random_segment(rng)
        if first != "contoso":
            with pytest.raises(NoRoute):
                router.resolve(f"https://dev.azure.com/{encode_some(rng, first)}/{path}")


def test_encoding_and_dot_segments_do_not_change_the_target():
    rng = random.Random(99)
    for _ in range(300):
        segments = [random_segment(rng) for _ in range(rng.randint(1, 6))]
        plain = canonical("https://h.example/" + "/".join(quote(s, safe="") for s in segments))
        noisy = []
        for segment in segments:
            if rng.random() < 0.3:
                noisy += [".", quote(random_segment(rng), safe=""), ".."]
            noisy.append(encode_some(rng, segment))
        assert canonical("https://h.example/" + "/".join(noisy)) == plain


def test_random_host_decorations_never_match(router):
    rng = random.Random(7)
    for _ in range(300):
        label = "".join(rng.choice(string.ascii_lowercase + "-") for _ in range(5)).strip("-")
        label = label or "x"
        for host in (f"{label}.dev.azure.com", f"dev.azure.com.{label}", f"dev{label}.azure.com"):
            with pytest.raises((NoRoute, RequestError)):
                router.resolve(f"https://{host}/contoso/")


def test_random_garbage_only_raises_our_errors(router):
    rng = random.Random(2024)
    alphabet = "https://dev.azure.com/contoso%2e@:[]\\?#\x00\n\u0430\u3002. "
    for _ in range(2000):
        url = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        try:
            chosen = router.resolve(url)
        except (NoRoute, RequestError, AmbiguousRoute):
            continue
        target = canonical(url)
        assert (target.host, target.port) == ("dev.azure.com", 443)
        assert target.path is None or target.path[0] == "contoso"
        assert chosen is CONTOSO
