"""The page a person opens to finish a device-code sign-in: type the code, approve or decline.

It stands in for https://microsoft.com/devicelogin. ``GET /devicelogin`` shows a form (``?code=``
fills it in); ``POST /devicelogin`` with ``user_code``, ``user`` and ``action`` (``approve`` or
``decline``) does what ``/_emulator/approve`` and ``/_emulator/deny`` do, and says so on a page.
"""

from html import escape
from typing import TYPE_CHECKING, Optional

from .web import Request, Response, text_response

if TYPE_CHECKING:
    from .idp import IdentityProvider

DEFAULT_USER = "alice@contoso.com"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - credhelper emulator</title>
<style>body{{font-family:sans-serif;max-width:28em;margin:3em auto;line-height:1.5}}
input{{font-size:1.1em;width:100%;margin:.2em 0 1em}} button{{font-size:1em;margin-right:1em}}
.note{{color:#555;font-size:.9em}} .error{{color:#a00}}</style></head>
<body><h1>{title}</h1>
{body}
<p class="note">This is the credhelper emulator, standing in for Microsoft's sign-in page.
No password is asked: approving signs the code in as the account named above.</p>
</body></html>
"""

_FORM = """{error}<p>Enter the code shown by <code>credhelper login</code> to allow access.</p>
<form method="post" action="/devicelogin">
<label for="user_code">Code</label>
<input id="user_code" name="user_code" value="{code}" autocomplete="off" autofocus required>
<label for="user">Sign in as</label>
<input id="user" name="user" value="{user}" required>
<button type="submit" name="action" value="approve">Approve</button>
<button type="submit" name="action" value="decline">Decline</button>
</form>
"""


def _page(status: int, title: str, body: str) -> Response:
    return text_response(status, _PAGE.format(title=escape(title), body=body), "text/html")


def _form(status: int, code: str = "", user: str = DEFAULT_USER, error: Optional[str] = None
          ) -> Response:
    shown = '<p class="error">{}</p>\n'.format(escape(error)) if error else ""
    return _page(status, "Enter code", _FORM.format(error=shown, code=escape(code, quote=True),
                                                   user=escape(user, quote=True)))


def devicelogin(idp: "IdentityProvider", request: Request) -> Response:
    """``GET`` shows the form; ``POST`` approves or declines the code typed into it."""
    if request.method in ("GET", "HEAD"):
        return _form(200, code=request.query.get("code", ""))
    if request.method != "POST":
        return text_response(405, "use GET or POST")
    form = request.form()
    code = form.get("user_code", "").strip().replace("-", "").upper()
    user = form.get("user", "").strip() or DEFAULT_USER
    action = form.get("action", "")
    if action not in ("approve", "decline"):
        return _form(400, code, user, "Choose Approve or Decline.")
    if not code:
        return _form(400, code, user, "Enter the code first.")
    state = idp.sessions.state(code)
    if state is None:
        return _form(400, code, user, "That code is not known here. Check it and try again.")
    if state != "pending":
        why = "has expired" if state == "expired" else "was already used"
        return _form(400, code, user, "That code {}: run credhelper login again for a new "
                                      "one.".format(why))
    if action == "approve":
        idp.approve(code, user=user)
        return _page(200, "You are signed in",
                     "<p>Signed in as <b>{}</b>. You can close this window and go back to "
                     "your terminal.</p>".format(escape(user)))
    idp.deny(code)
    return _page(200, "Sign-in declined",
                 "<p>You declined the sign-in; nothing was granted. You can close this "
                 "window.</p>")
