"""The one aiohttp client session that carries relayed requests to providers.

aiohttp's client is the library made for this; what trayproxy adds is its settings and the
words a user sees when a provider cannot be reached or answers something that is not HTTP:

- one pooled session for the life of the server: keep-alive per origin, at most
  ``PER_HOST`` connections to one provider, idle ones closed after ``KEEPALIVE_S``;
- a ``POST`` is never sent twice: aiohttp repeats only idempotent requests on a dropped
  keep-alive connection, and trayproxy does not retry an attempt itself (fallbacks may);
- answers are bounded: headers by aiohttp's line, field and count limits, decompression
  chunk by chunk under the read buffer's back-pressure (the relay caps a whole answer);
- Happy Eyeballs between a provider's addresses (a dead IPv6 address costs 0.25 s);
- no cookies, no redirects followed, no ``~/.netrc``: the proxy is chosen per request by
  the caller, from the OS settings, as urllib reads them.
"""

from __future__ import annotations

import asyncio
import re
import ssl

import aiohttp

from trayproxy import __version__

# Common servers close idle keep-alive connections after 5 s (Node, uvicorn, gunicorn); a
# pooled connection is dropped before that, so a request rarely meets one being closed.
KEEPALIVE_S = 4.0
PER_HOST = 64  # connections to one provider at once; more requests wait for a free one
TOTAL = 256
READ_BUFFER = 64 * 1024  # reading from a provider pauses above twice this, unread

USER_AGENT = f"trayproxy/{__version__}"


def open_session() -> aiohttp.ClientSession:
    """The session for relayed requests; call inside the running loop, close it at exit."""
    connector = aiohttp.TCPConnector(
        limit=TOTAL,
        limit_per_host=PER_HOST,
        keepalive_timeout=KEEPALIVE_S,
        ttl_dns_cache=60,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),  # the relay times each phase itself
        cookie_jar=aiohttp.DummyCookieJar(),  # provider cookies mean nothing here
        trust_env=False,  # proxies come from the caller (and no ~/.netrc credentials)
        auto_decompress=True,
        read_bufsize=READ_BUFFER,
        headers={"User-Agent": USER_AGENT},
    )


_timeouts: dict[float, aiohttp.ClientTimeout] = {}


def timeout(connect: float) -> aiohttp.ClientTimeout:
    """A request's timeouts: ``connect`` for getting a connection: the name lookup, TCP and
    TLS, a proxy's answer to ``CONNECT``, and a wait for a free connection (which only a
    request beyond ``PER_HOST`` at once to one provider has). Waiting for the status line is
    the relay's ``first_byte_timeout``, reading the body its ``idle_timeout``."""
    found = _timeouts.get(connect)
    if found is None:
        found = _timeouts[connect] = aiohttp.ClientTimeout(
            total=None, connect=connect, sock_connect=connect
        )
    return found


UNSUPPORTED_PROXY = "proxy {scheme}:// is not supported (only http:// and https://)"


def proxy_problem(proxy: str | None) -> str | None:
    """Why ``proxy`` cannot be used, or None."""
    if proxy is None:
        return None
    scheme = proxy.split("://", 1)[0].lower() if "://" in proxy else "http"
    if scheme in ("http", "https"):
        return None
    return UNSUPPORTED_PROXY.format(scheme=scheme)


def unreachable_reason(exc: BaseException, connect_timeout: float) -> str | None:
    """Why no connection could be made (refused, unresolvable, TLS, proxy), or None when
    ``exc`` happened after the request may have reached the provider."""
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return f"cannot reach the proxy {exc.host}:{exc.port}: {_os_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert = exc.certificate_error
        detail = getattr(cert, "verify_message", None) or str(cert)
        return f"TLS certificate not trusted: {detail}"
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return f"the proxy refused the tunnel: {exc.status} {exc.message}"[:300]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return f"no connection within {connect_timeout:g} s (connect_timeout)"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _os_reason(exc.os_error)
    return None


def _os_reason(os_error: OSError) -> str:
    if isinstance(os_error, ssl.SSLError):
        return f"TLS failed: {os_error.reason or os_error}"
    return os_error.strerror or str(os_error) or type(os_error).__name__


# Errors that can only happen once the request was (at least partly) written out.
_AFTER_SENDING = (
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientPayloadError,
    aiohttp.ClientResponseError,
    aiohttp.ClientOSError,
    ConnectionError,
    asyncio.IncompleteReadError,
)


def sent(exc: BaseException) -> bool:
    """Whether the request may have reached the provider before ``exc``."""
    return isinstance(exc, _AFTER_SENDING)


def broken_answer_reason(exc: BaseException) -> str:
    """What went wrong with an answer that started (or was about to): words for a user."""
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "closed the connection before answering"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"broke off its answer ({_short(exc)})"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"sent an answer that is not valid HTTP ({_short(exc)})"
    if isinstance(exc, (ConnectionError, aiohttp.ClientOSError)):
        return f"dropped the connection ({_short(exc)})"
    return f"failed ({_short(exc)})"


def unsent_reason(exc: BaseException) -> str:
    """Why a request could not go out at all (a bad URL, a closed session): words for a user."""
    return _short(exc)


_USERINFO = re.compile(r"//[^/@\s]*@")


def _short(exc: BaseException) -> str:
    """The exception's text, short, with any credentials in a URL (a proxy's) taken out."""
    text = exc.message if isinstance(exc, aiohttp.ClientResponseError) else str(exc)
    text = _USERINFO.sub("//", text.strip()) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "…"


CLIENT_ERRORS = (aiohttp.ClientError, asyncio.IncompleteReadError, ConnectionError)
