"""The token and device-code endpoints: one function per grant, each checked as Entra checks it."""

import base64
import json
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Dict, Tuple

from .aad import OAuthError, resource_scopes, single_resource
from .faults import Fault
from .web import Request, Response, json_response

if TYPE_CHECKING:
    from .idp import IdentityProvider

GRANT_DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"


def user_oid(user: str) -> str:
    """A user's object id, stable per user name."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "user:" + user.lower()))


def display_name(user: str) -> str:
    """'alice.smith@contoso.com' -> 'Alice Smith'."""
    return user.split("@")[0].replace(".", " ").title()


def fault_response(fault: Fault, stopping: threading.Event) -> Response:
    """What a planned fault looks like on the wire."""
    if fault.kind == "timeout":
        # Hold the connection, then hang up without a word; wake early when the server stops.
        stopping.wait(30 if fault.seconds is None else fault.seconds)
        return Response(drop=True)
    if fault.kind == "reset":
        return Response(drop=True, reset=True)  # a TCP reset, no answer
    retry = () if fault.retry_after is None else (("Retry-After", str(fault.retry_after)),)
    if fault.kind == "slow":
        # A 503 whose body trickles in over ``seconds``: every read gets a byte in time, so
        # only a deadline on the whole exchange ends it.
        slow = OAuthError("temporarily_unavailable", 90033, "A transient error has occurred.",
                          status=503).response(retry)
        slow.trickle = 10.0 if fault.seconds is None else fault.seconds
        return slow
    if fault.kind == "429":
        retry = retry or (("Retry-After", "1"),)
        return OAuthError("temporarily_unavailable", 50196, "The server is throttling this "
                          "client. Retry after the time in Retry-After.", status=429
                          ).response(retry)
    if fault.kind == "outage":
        return OAuthError("temporarily_unavailable", 90033, "A transient error has occurred. "
                          "Please try again.", status=503).response(retry)
    if fault.kind == "500":
        return OAuthError("server_error", 90033, "A transient error has occurred. Please try "
                          "again.", status=500).response(retry)
    if fault.kind == "invalid_client":
        return OAuthError("invalid_client", 7000215, "Invalid client secret provided.",
                          status=401).response()
    if fault.kind == "interaction_required":
        return OAuthError("interaction_required", 50076, "Due to a configuration change made by "
                          "your administrator, or because you moved to a new location, you must "
                          "use multi-factor authentication.", suberror="basic_action").response()
    return OAuthError("invalid_grant", 70000, "The provided grant is invalid or malformed."
                      ).response()


def token_endpoint(idp: "IdentityProvider", request: Request, tenant: str,
                   stopping: threading.Event) -> Response:
    """``POST /{tenant}/oauth2/v2.0/token``."""
    form = request.form()
    grant_type, client_id = form.get("grant_type", ""), form.get("client_id", "")
    scopes = tuple(form.get("scope", "").split())
    idp.remember(*(form.get(k) for k in ("client_secret", "client_assertion", "refresh_token",
                                         "device_code")))
    fault = idp.faults.take()
    if fault is not None:
        response = fault_response(fault, stopping)
        idp.log(tenant, grant_type, client_id, form.get("scope", ""),
                None if response.drop else response.status, fault.kind, fault.kind)
        return response
    try:
        body = _grant(idp, form, tenant, grant_type, client_id, scopes)
    except OAuthError as exc:
        idp.log(tenant, grant_type, client_id, form.get("scope", ""), exc.status, exc.error)
        return exc.response()
    idp.log(tenant, grant_type, client_id, form.get("scope", ""), 200)
    idp.remember(*(body.get(k) for k in ("access_token", "refresh_token", "id_token")))
    return json_response(200, body, (("Cache-Control", "no-store"),))


def _grant(idp: "IdentityProvider", form: Dict[str, str], tenant: str, grant_type: str,
           client_id: str, scopes: Tuple[str, ...]) -> Dict[str, Any]:
    if not client_id:
        raise OAuthError("invalid_request", 900144, "The request body must contain the following "
                         "parameter: 'client_id'.")
    app = idp.directory.app(client_id, tenant)
    if app.confidential or "client_secret" in form or "client_assertion" in form:
        token_url = "{}/{}/oauth2/v2.0/token".format(idp.base, tenant)
        idp.directory.authenticate(app, form, token_url)
    if grant_type == "client_credentials":
        if not app.confidential:
            raise OAuthError("invalid_client", 7000218, "The request body must contain the "
                             "following parameter: 'client_assertion' or 'client_secret'.",
                             status=401)
        named = resource_scopes(scopes)
        if len(named) != 1 or not named[0].endswith("/.default"):
            raise OAuthError("invalid_scope", 1002012, "The provided value for scope {} is not "
                             "valid. Client credential flows must have a scope value with "
                             "/.default suffixed to the resource identifier (application ID "
                             "URI).".format(" ".join(scopes)))
        body = idp.issue(tenant, single_resource(named), client_id)
        body["scope"] = named[0]
        return body
    if grant_type == GRANT_DEVICE_CODE:
        code = idp.sessions.redeem_device_code(form.get("device_code", ""), client_id)
        return _user_tokens(idp, tenant, client_id, code.user or "", code.scopes)
    if grant_type == "refresh_token":
        grant = idp.sessions.redeem_refresh_token(form.get("refresh_token", ""), client_id)
        return _user_tokens(idp, tenant, client_id, grant.user, scopes)
    raise OAuthError("unsupported_grant_type", 70003, "The app requested an unsupported grant "
                     "type '{}'.".format(grant_type))


def _user_tokens(idp: "IdentityProvider", tenant: str, client_id: str, user: str,
                 scopes: Tuple[str, ...]) -> Dict[str, Any]:
    body = idp.issue(tenant, single_resource(scopes), client_id, user=user)
    body["scope"] = " ".join(resource_scopes(scopes) or ("openid",))
    body["refresh_token"] = idp.sessions.issue_refresh_token(client_id, tenant, user)
    now, oid = int(time.time()), user_oid(user)
    body["id_token"] = idp.signing_key.sign({
        "aud": client_id, "iss": idp.issuer(tenant), "iat": now, "nbf": now, "exp": now + 3600,
        "sub": oid, "oid": oid, "tid": tenant, "preferred_username": user, "name":
        display_name(user), "ver": "2.0"})
    body["client_info"] = base64.urlsafe_b64encode(
        json.dumps({"uid": oid, "utid": tenant}).encode()).rstrip(b"=").decode()
    return body


def devicecode_endpoint(idp: "IdentityProvider", request: Request, tenant: str) -> Response:
    """``POST /{tenant}/oauth2/v2.0/devicecode``."""
    form = request.form()
    client_id = form.get("client_id", "")
    try:
        app = idp.directory.app(client_id, tenant)
        if not app.public:
            raise OAuthError("invalid_client", 7000218, "The request body must contain the "
                             "following parameter: 'client_assertion' or 'client_secret'.",
                             status=401)
        scopes = tuple(form.get("scope", "").split())
        single_resource(scopes)
    except OAuthError as exc:
        idp.log(tenant, "devicecode", client_id, form.get("scope", ""), exc.status, exc.error)
        return exc.response()
    code = idp.sessions.start(client_id, tenant, scopes)
    idp.log(tenant, "devicecode", client_id, form.get("scope", ""), 200)
    verification_uri = "{}/devicelogin".format(idp.base)
    return json_response(200, {
        "device_code": code.device_code, "user_code": code.user_code,
        "verification_uri": verification_uri, "expires_in": int(code.expires_at - time.time()),
        "interval": code.interval,
        "message": "To sign in, use a web browser to open the page {} and enter the code {} to "
                   "authenticate.".format(verification_uri, code.user_code)})


