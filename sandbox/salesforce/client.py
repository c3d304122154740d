"""A `requests.Session` that takes an unmodified Salesforce client to the sandbox on loopback.

simple-salesforce builds ``https://`` URLs from the instance name it is given or that login
answers, and logs in at ``https://{domain}.salesforce.com``. Given this session (its public
``session=`` argument), every ``https://`` call to a Salesforce host is sent to the sandbox's
``http://127.0.0.1:PORT`` instead; the path, query and body are left alone.

    sf = Salesforce(instance_url=INSTANCE_URL, session_id=token, session=client_session(url))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

__all__ = ["SALESFORCE_HOST_SUFFIXES", "LoopbackAdapter", "client_session"]

SALESFORCE_HOST_SUFFIXES = (".salesforce.com", ".force.com")


class LoopbackAdapter(HTTPAdapter):
    """Sends requests for Salesforce hosts (and ``extra_hosts``) to ``base_url``."""

    def __init__(self, base_url: str, extra_hosts: tuple[str, ...] = ()) -> None:
        super().__init__()
        target = urlsplit(base_url)
        self._scheme, self._netloc = target.scheme, target.netloc
        self._hosts = tuple(host.lower() for host in extra_hosts)

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        """Rewrite the URL's scheme and host when it names Salesforce, then send."""
        parts = urlsplit(request.url or "")
        if self._routed(parts.hostname or ""):
            request.url = urlunsplit(
                (self._scheme, self._netloc, parts.path, parts.query, parts.fragment)
            )
        return super().send(request, **kwargs)

    def _routed(self, host: str) -> bool:
        host = host.lower()
        return host in self._hosts or host.endswith(SALESFORCE_HOST_SUFFIXES)


def client_session(
    base_url: str, extra_hosts: tuple[str, ...] = (), headers: Mapping[str, str] | None = None
) -> requests.Session:
    """A session whose ``https://`` Salesforce calls reach the sandbox at ``base_url``."""
    session = requests.Session()
    session.mount("https://", LoopbackAdapter(base_url, extra_hosts))
    session.headers.update(headers or {})
    return session
