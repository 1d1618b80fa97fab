"""Entra's vocabulary: OAuth errors with AADSTS codes, scopes and the resources they name."""

import datetime
import uuid
from typing import Optional, Sequence, Tuple

from .web import Response, json_response

OIDC_SCOPES = frozenset(("openid", "profile", "offline_access", "email"))
GRAPH = "00000003-0000-0000-c000-000000000000"


class OAuthError(Exception):
    """An error the token endpoint answers, shaped like Entra's."""

    def __init__(self, error: str, code: int, description: str, status: int = 400,
                 suberror: Optional[str] = None) -> None:
        super().__init__("{}: AADSTS{}: {}".format(error, code, description))
        self.error = error
        self.code = code
        self.description = description
        self.status = status
        self.suberror = suberror

    def response(self, headers: Tuple[Tuple[str, str], ...] = ()) -> Response:
        """The JSON error body Entra sends, AADSTS code first in the description."""
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
        body = {
            "error": self.error,
            "error_description": "AADSTS{}: {}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\n"
                                 "Timestamp: {}".format(self.code, self.description, trace,
                                                        correlation, now),
            "error_codes": [self.code], "timestamp": now, "trace_id": trace,
            "correlation_id": correlation,
        }
        if self.suberror:
            body["suberror"] = self.suberror
        return json_response(self.status, body, headers)


def resource_scopes(scopes: Sequence[str]) -> Tuple[str, ...]:
    """The scopes that name a resource, without openid/profile/offline_access."""
    return tuple(s for s in scopes if s.lower() not in OIDC_SCOPES)


def resource_of(scope: str) -> str:
    """The audience a scope's token carries: the scope minus ``/.default`` or its permission."""
    if scope.endswith("/.default"):
        return scope[: -len("/.default")]
    if "/" in scope.replace("://", ""):
        return scope.rsplit("/", 1)[0]
    return GRAPH  # a bare permission such as User.Read is Microsoft Graph's


def single_resource(scopes: Sequence[str]) -> str:
    """The one resource a token request may name, as Entra insists."""
    resources = {resource_of(s) for s in resource_scopes(scopes)}
    if not resources:
        return GRAPH
    if len(resources) > 1:
        raise OAuthError("invalid_scope", 28000, "Provided value for the input parameter scope "
                         "is not valid because it contains more than one resource.")
    return resources.pop()
