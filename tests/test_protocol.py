"""The wire format: one JSON object per line, bounded, versioned."""

import pytest

from credhelper import protocol
from credhelper.errors import NoRoute, RequestError, from_wire


def test_round_trip():
    message = {"v": 1, "op": "get", "url": "https://dev.azure.com/contoso/", "for": "git"}
    data = protocol.encode(message)
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert protocol.parse_request(data.rstrip(b"\n")) == message


@pytest.mark.parametrize("data", [
    b"", b"not json", b"[1,2]", b"\xff\xfe", b'"string"', b"null",
    b'{"v": 2, "op": "get"}', b'{"v": 1, "op": "format_disk"}', b'{"v": 1}',
])
def test_garbage_is_a_request_error(data):
    with pytest.raises(RequestError):
        protocol.parse_request(data)


def test_oversized_message_is_refused():
    with pytest.raises(RequestError, match="larger than"):
        protocol.decode(b"{" + b" " * protocol.MAX_MESSAGE + b"}")


def test_errors_keep_their_code_over_the_wire():
    err = from_wire(NoRoute("no route for https://evil.example/").to_wire())
    assert isinstance(err, NoRoute) and err.code == "no_route"
    assert from_wire({"ok": False, "code": "something_new", "message": "x"}).code == "something_new"
