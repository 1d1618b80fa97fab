"""A managed-identity endpoint shaped like App Service's (``IDENTITY_ENDPOINT``/``IDENTITY_HEADER``).

Plain HTTP on loopback, as the real one is. Token faults apply here too, so a test can make a
managed identity fail the same way as the token endpoint.
"""

import hmac
import secrets
import threading
import time

from .grants import fault_response
from .idp import IdentityProvider
from .web import Request, Response, json_response

DEFAULT_IDENTITY = "mi-app"


class ManagedIdentityEndpoint:
    """``GET /msi/token?resource=...&api-version=2019-08-01`` with ``X-IDENTITY-HEADER``."""

    def __init__(self, idp: IdentityProvider, tenant: str, stopping: threading.Event) -> None:
        self.idp = idp
        self.tenant = tenant
        self.header = secrets.token_hex(16)
        self._stopping = stopping

    def __repr__(self) -> str:
        return "ManagedIdentityEndpoint(tenant={!r})".format(self.tenant)

    def __call__(self, request: Request) -> Response:
        """Answer one token request, or a 4xx in App Service's error shape."""
        if request.path.rstrip("/") != "/msi/token" or request.method != "GET":
            return json_response(404, {"statusCode": 404, "message": "not found"})
        if not hmac.compare_digest(request.headers.get("X-IDENTITY-HEADER", ""), self.header):
            return json_response(401, {"statusCode": 401,
                                       "message": "X-IDENTITY-HEADER missing or wrong"})
        resource = request.query.get("resource", "")
        client_id = request.query.get("client_id") or DEFAULT_IDENTITY
        if request.query.get("api-version") != "2019-08-01" or not resource:
            return self._error(client_id, resource, 400, "api-version 2019-08-01 and a resource "
                                                          "are required")
        app = self.idp.directory.apps.get(client_id)
        if app is None or not app.managed_identity:
            return self._error(client_id, resource, 400, "No managed identity found for "
                                                          "client_id " + client_id)
        fault = self.idp.faults.take()
        if fault is not None:
            response = fault_response(fault, self._stopping)
            self.idp.log(self.tenant, "managed_identity", client_id, resource,
                         None if response.drop else response.status, fault.kind, fault.kind)
            return response
        audience = resource[:-len("/.default")] if resource.endswith("/.default") else resource
        issued = self.idp.issue(self.tenant, audience, client_id)
        self.idp.log(self.tenant, "managed_identity", client_id, resource, 200)
        self.idp.remember(issued["access_token"])
        return json_response(200, {
            "access_token": issued["access_token"], "token_type": "Bearer",
            "expires_on": str(int(time.time()) + issued["expires_in"]), "resource": resource,
            "client_id": client_id})

    def _error(self, client_id: str, resource: str, status: int, message: str) -> Response:
        self.idp.log(self.tenant, "managed_identity", client_id, resource, status, "invalid_request")
        return json_response(status, {"statusCode": status, "message": message})
