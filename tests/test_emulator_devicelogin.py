"""The emulator's /devicelogin page: a person types the code shown by `credhelper login` and
approves or declines it, through the page's own form, as at Microsoft's page."""

import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from typing import Dict, List, Optional, Tuple

import pytest

from harness import Workspace
from signin import Login, person_config

URL = re.compile(r"open (https://\S+) and enter the code")


class _Form(HTMLParser):
    """The one form on a page: its method, action, text inputs and submit buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.method = self.action = ""
        self.inputs: Dict[str, str] = {}
        self.buttons: List[Tuple[str, str]] = []
        self.text: List[str] = []

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.method, self.action = a.get("method", "get").lower(), a.get("action", "")
        elif tag == "input":
            self.inputs[a["name"]] = a.get("value", "")
        elif tag == "button" and a.get("type") == "submit":
            self.buttons.append((a["name"], a["value"]))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def fetch(ws: Workspace, url: str, form: Optional[Dict[str, str]] = None) -> Tuple[int, _Form]:
    """GET (or POST ``form`` to) a page over HTTPS, trusting the emulator's CA; status, parsed page."""
    context = ssl.create_default_context(cafile=str(ws.em.ca_file))
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    try:
        with urllib.request.urlopen(url, data=data, context=context, timeout=10) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    page = _Form()
    page.feed(body.decode())
    return status, page


def submit(ws: Workspace, page_url: str, page: _Form, button: str, **fields: str
           ) -> Tuple[int, _Form]:
    """Fill the page's form as a person would and press one of its buttons."""
    assert page.method == "post"
    values = dict(page.inputs, **fields)
    name, value = next(b for b in page.buttons if b[1] == button)
    values[name] = value
    return fetch(ws, urllib.parse.urljoin(page_url, page.action), values)


@pytest.fixture
def person(ws: Workspace) -> Workspace:
    """A workspace with one device-code account ('work') and a running daemon."""
    person_config(ws)
    ws.start_daemon()
    return ws


def test_a_person_approves_the_code_at_the_printed_page(person: Workspace) -> None:
    login = Login(person, "work")
    page_url = URL.search(login.first_line).group(1)
    status, page = fetch(person, page_url)
    assert status == 200 and page.inputs.get("user_code") == ""
    assert {value for _, value in page.buttons} == {"approve", "decline"}
    status, done = submit(person, page_url, page, "approve", user_code=login.user_code.lower(),
                          user="bob@contoso.com")
    assert status == 200 and "Signed in as bob@contoso.com" in "".join(done.text)
    code, out, err = login.finish()
    assert (code, out.strip()) == (0, "Signed in as bob@contoso.com (work)"), err
    status, again = submit(person, page_url, page, "approve", user_code=login.user_code)
    assert status == 400 and "already used" in "".join(again.text)


def test_a_person_declines_the_code_at_the_page(person: Workspace) -> None:
    login = Login(person, "work")
    page_url = URL.search(login.first_line).group(1)
    status, page = fetch(person, f"{page_url}?code={login.user_code}")
    assert page.inputs["user_code"] == login.user_code  # a link may carry the code
    status, done = submit(person, page_url, page, "decline")
    assert status == 200 and "declined" in "".join(done.text)
    code, _, err = login.finish()
    assert code == 5 and "declined" in err and "to try again: credhelper login work" in err


def test_an_unknown_code_is_refused_on_the_page_and_the_sign_in_still_waits(
        person: Workspace) -> None:
    login = Login(person, "work")
    page_url = URL.search(login.first_line).group(1)
    _, page = fetch(person, page_url)
    status, wrong = submit(person, page_url, page, "approve", user_code="NOTACODE1")
    assert status == 400 and "not known" in "".join(wrong.text)
    assert wrong.inputs["user_code"] == "NOTACODE1"  # the form comes back to correct it
    assert person.em.idp.sessions.state(login.user_code) == "pending"
    status, _ = submit(person, page_url, wrong, "approve", user_code=login.user_code)
    assert status == 200
    assert login.finish()[0] == 0
