"""Sessions and the four ways simple-salesforce logs in.

* SOAP ``login()`` at ``/services/Soap/u/{version}`` (username + password + security token),
* OAuth 2.0 ``/services/oauth2/token`` with the username-password, client-credentials and JWT
  bearer grants. The JWT's signature is not checked (the sandbox holds no certificate); its
  issuer, subject, audience and expiry are.

Every login issues a new session id; an expired-session fault revokes them all at once.
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/intro_oauth_and_connected_apps.htm
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from sandbox.http import Request, Response, Route, json_response
from sandbox.salesforce.config import API_VERSION, SalesforceOptions

__all__ = ["Logins", "Sessions"]

_JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_LOGIN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
_SOAP_INVALID_LOGIN = "Invalid username, password, security token; or user locked out."


class Sessions:
    """The session ids the org accepts; thread-safe."""

    def __init__(self, org_id: str, initial: str) -> None:
        self._org_id = org_id
        self._valid = {initial}
        self._lock = threading.Lock()

    def issue(self) -> str:
        """A new valid session id, shaped like Salesforce's (``00D...!AQ...``)."""
        token = secrets.token_urlsafe(72).replace("-", ".").replace("_", "")
        session_id = f"{self._org_id[:15]}!AQ{token}"
        with self._lock:
            self._valid.add(session_id)
        return session_id

    def valid(self, session_id: str | None) -> bool:
        """Whether requests bearing ``session_id`` are authenticated."""
        with self._lock:
            return session_id in self._valid

    def revoke_all(self) -> None:
        """Expire every session (a fresh login is needed)."""
        with self._lock:
            self._valid.clear()


class OAuthError(Exception):
    """A token request the endpoint refuses with ``{"error", "error_description"}``."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class Logins:
    """The login endpoints, checking credentials against the options."""

    def __init__(
        self,
        options: SalesforceOptions,
        sessions: Sessions,
        identity: tuple[str, str],
        clock: Callable[[], datetime],
    ) -> None:
        self.options = options
        self.sessions = sessions
        self.org_id, self.user_id = identity
        self.clock = clock
        self._grants: dict[str, Callable[[Request, Mapping[str, str]], None]] = {
            "password": self._password_grant,
            "client_credentials": self._client_credentials_grant,
            _JWT_GRANT: self._jwt_grant,
        }

    def routes(self) -> list[Route]:
        """The public login routes."""
        return [
            Route("POST", r"/services/oauth2/token", "oauth2/token", self.token, public=True),
            Route("POST", r"/services/Soap/u/[0-9]+\.[0-9]", "soap/login", self.soap, public=True),
        ]

    def token(self, request: Request) -> Response:
        """``POST /services/oauth2/token``: an access token for a valid grant."""
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8")).items()}
        grant = self._grants.get(form.get("grant_type", ""))
        try:
            if grant is None:
                raise OAuthError("unsupported_grant_type", "grant type not supported")
            grant(request, form)
        except OAuthError as refused:
            body = {"error": refused.error, "error_description": refused.description}
            return json_response(400, body)
        return json_response(200, self._token_body())

    def soap(self, request: Request) -> Response:
        """``POST /services/Soap/u/{version}``: the partner API's ``login()``."""
        values = _soap_values(request.body)
        password = values.get("password", "")
        accepted = (self.options.password + self.options.security_token, self.options.password)
        if values.get("username") != self.options.username or password not in accepted:
            return _soap_fault("INVALID_LOGIN", _SOAP_INVALID_LOGIN)
        return _soap_login_response(self._soap_result(self.sessions.issue()))

    def _password_grant(self, request: Request, form: Mapping[str, str]) -> None:
        """Username-password: the connected app, then the user (password + token or not)."""
        self._check_client(form.get("client_id"), form.get("client_secret"))
        accepted = (self.options.password + self.options.security_token, self.options.password)
        if form.get("username") != self.options.username or form.get("password") not in accepted:
            raise OAuthError("invalid_grant", "authentication failure")

    def _client_credentials_grant(self, request: Request, form: Mapping[str, str]) -> None:
        """Client credentials: the connected app, by Basic auth or in the form."""
        key, secret = _basic_credentials(request) or (
            form.get("client_id"),
            form.get("client_secret"),
        )
        self._check_client(key, secret)

    def _jwt_grant(self, request: Request, form: Mapping[str, str]) -> None:
        """JWT bearer: issuer, audience, subject and expiry of the assertion."""
        claims = _jwt_claims(form.get("assertion", ""))
        if claims.get("iss") != self.options.consumer_key:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if claims.get("aud") not in (*_LOGIN_AUDIENCES, self.options.instance_url):
            raise OAuthError("invalid_grant", "audience is invalid")
        if claims.get("sub") != self.options.username:
            raise OAuthError("invalid_grant", "invalid assertion")
        if float(claims.get("exp", 0)) < self.clock().timestamp():
            raise OAuthError("invalid_grant", "expired authorization code")

    def _check_client(self, key: str | None, secret: str | None) -> None:
        if key != self.options.consumer_key:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if secret != self.options.consumer_secret:
            raise OAuthError("invalid_client", "invalid client credentials")

    def _token_body(self) -> dict[str, Any]:
        """A token response: a new session id and where the instance is."""
        session_id = self.sessions.issue()
        issued_at = str(int(self.clock().timestamp() * 1000))
        identity = f"https://login.salesforce.com/id/{self.org_id}/{self.user_id}"
        digest = hmac.new(session_id.encode(), (identity + issued_at).encode(), hashlib.sha256)
        return {
            "access_token": session_id,
            "instance_url": self.options.instance_url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": base64.b64encode(digest.digest()).decode(),
            "scope": "api",
        }

    def _soap_result(self, session_id: str) -> dict[str, str]:
        """The fields of a SOAP ``loginResponse``'s result, in Salesforce's order."""
        base = self.options.instance_url
        return {
            "metadataServerUrl": f"{base}/services/Soap/m/{API_VERSION}/{self.org_id}",
            "passwordExpired": "false",
            "sandbox": "false",
            "serverUrl": f"{base}/services/Soap/u/{API_VERSION}/{self.org_id}",
            "sessionId": session_id,
            "userId": self.user_id,
        }


def _soap_values(body: bytes) -> dict[str, str]:
    """Local element name -> text of a SOAP request (``username``, ``password``, ...)."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return {}
    return {element.tag.rpartition("}")[2]: element.text or "" for element in root.iter()}


def _soap_login_response(result: Mapping[str, str]) -> Response:
    fields = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in result.items())
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns="urn:partner.soap.sforce.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<soapenv:Body><loginResponse><result>{fields}</result></loginResponse>"
        "</soapenv:Body></soapenv:Envelope>"
    )
    return Response(200, body.encode(), content_type="text/xml;charset=UTF-8")


def _soap_fault(code: str, message: str) -> Response:
    """A login fault; Salesforce answers SOAP faults with HTTP 500."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:sf="urn:fault.partner.soap.sforce.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<soapenv:Body><soapenv:Fault><faultcode>sf:{code}</faultcode>"
        f"<faultstring>{code}: {escape(message)}</faultstring><detail>"
        f'<sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>{code}</sf:exceptionCode>'
        f"<sf:exceptionMessage>{escape(message)}</sf:exceptionMessage></sf:LoginFault>"
        "</detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
    return Response(500, body.encode(), content_type="text/xml;charset=UTF-8")


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    """The (id, secret) of an ``Authorization: Basic`` header."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        key, _, secret = base64.b64decode(encoded.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return key, secret


def _jwt_claims(assertion: str) -> dict[str, Any]:
    """The claims of a compact JWS (header.claims.signature); the signature is not checked."""
    parts = assertion.split(".")
    try:
        if len(parts) != 3:
            raise ValueError("not a compact JWS")
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(claims, dict):
            raise ValueError("claims are not an object")
    except (ValueError, binascii.Error) as error:
        raise OAuthError("invalid_grant", "invalid assertion") from error
    return claims
