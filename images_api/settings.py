"""Settings: defaults, ``IMAGES_API_*`` environment variables, config keys.

Every setting has one name, used both as the environment variable and as the
Flask config key (README: Users and tokens). ``read`` turns the raw values into
typed ones and rejects malformed values with ``SettingError``.
"""

import ipaddress
import logging
import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from marshmallow import ValidationError

from .schemas import provider_id

PREFIX = "IMAGES_API_"

DEFAULTS = {
    "IMAGES_API_DATABASE_URL": "sqlite:///images.db",
    "IMAGES_API_PROVIDERS": "",
    "IMAGES_API_TRUST_REMOTE_USER": False,
    "IMAGES_API_ADMIN_TOKEN": None,
    "IMAGES_API_CREATE_ADMIN": True,
    "IMAGES_API_AUTO_UPGRADE": True,
    "IMAGES_API_LOG_LEVEL": "INFO",
    "IMAGES_API_TRUSTED_PROXY": "",
    "IMAGES_API_THREADS": 4,
}

#: Worker threads a server may run (``--threads``), and so connections a pool may hold.
MAX_THREADS = 256

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

#: An admin token set by hand must be sendable in a header and about as hard
#: to guess as a generated one (256 bits as 43 URL-safe characters).
ADMIN_TOKEN_PATTERN = re.compile(r"[\x21-\x7e]{32,}")

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


class SettingError(ValueError):
    """A setting has a value the service cannot use; the message names it."""


@dataclass(frozen=True)
class Settings:
    """The typed settings one app runs with."""

    database_url: str
    providers: frozenset
    trust_remote_user: bool
    admin_token: str | None
    create_admin: bool
    auto_upgrade: bool
    log_level: int
    trusted_proxies: tuple
    threads: int


def from_environ(environ=os.environ):
    """The ``IMAGES_API_*`` variables of ``environ``, as a dict of raw strings."""
    return {key: value for key, value in environ.items() if key.startswith(PREFIX)}


def flag(name, value):
    """``value`` (a bool, or a string such as ``"1"``/``"off"``) as a bool."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise SettingError(f"{name} must be one of 1/0, true/false, yes/no, on/off, not {value!r}")


def provider_list(name, value):
    """``value`` (a comma-separated string or an iterable of ids) as a frozenset.

    Empty means any provider is allowed; an empty entry (``"ec2,"``, ``","``)
    or a malformed id is a ``SettingError``.
    """
    if isinstance(value, str):
        if not value.strip():
            return frozenset()
        value = [item.strip() for item in value.split(",")]
    field = provider_id()
    try:
        return frozenset(field.deserialize(item) for item in value)
    except ValidationError as error:
        raise SettingError(f"{name}: every entry must be a provider id: {error.messages[0]}") from None


def networks(name, value):
    """``value`` (comma-separated addresses or CIDR networks) as a tuple of ``ip_network``."""
    items = [item.strip() for item in value.split(",")] if isinstance(value, str) else list(value)
    if items == [""]:
        return ()
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in items)
    except ValueError as error:
        raise SettingError(f"{name}: {error}") from None


def whole_number(name, value, low, high):
    """``value`` (an int, or a string of digits) as an int from ``low`` to ``high``."""
    text = str(value).strip()
    if not (text.isascii() and text.isdigit() and low <= int(text) <= high):
        raise SettingError(f"{name} must be a whole number from {low} to {high}, not {value!r}")
    return int(text)


def log_level(name, value):
    """``value`` (a level name, any case) as a ``logging`` level number."""
    text = str(value).strip().upper()
    if text not in LOG_LEVELS:
        raise SettingError(f"{name} must be one of {', '.join(LOG_LEVELS)}, not {value!r}")
    return logging.getLevelName(text)


#: Query parameters of a database URL that may carry a secret (``password``, ``passwd``, ``sslpassword``, ...).
SECRET_PARAMETER = re.compile(r"pass|secret|token", re.IGNORECASE)


def masked_url(url):
    """``url`` with every secret it can carry replaced by ``***``, fit for a log line.

    The password of its user part, and the value of any query parameter whose
    name says it is a secret (``?password=...``). A URL too malformed to
    parse (an unencoded ``/``, ``#`` or ``?`` in a password ends the host part
    early) loses everything before its last ``@``.
    """
    scheme, _, rest = url.partition("://")
    try:
        parts = original = urlsplit(url)
        parts.port  # noqa: B018 (a port that is no number raises here)
    except ValueError:
        parts = None
    if parts is None or ("@" not in parts.netloc and "@" in rest and not rest.startswith("/")):
        return f"{scheme}://***{rest[rest.rfind('@'):]}" if "@" in rest else f"{scheme}://***"
    if parts.password is not None:
        user, _, host = parts.netloc.rpartition("@")
        parts = parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}")
    if parts.query:
        pairs = (pair.partition("=") for pair in parts.query.split("&"))
        parts = parts._replace(query="&".join(f"{k}{eq}{'***' if SECRET_PARAMETER.search(k) else v}" for k, eq, v in pairs))
    # Put back together only when changed: urlunsplit would drop the empty host of sqlite:///x.db.
    return url if parts == original else urlunsplit(parts)


def read(config):
    """Typed ``Settings`` from a mapping of raw values (Flask config, defaults filled in).

    Raises ``SettingError`` naming the first malformed setting.
    """
    values = {**DEFAULTS, **{key: config[key] for key in DEFAULTS if key in config}}
    database_url = str(values["IMAGES_API_DATABASE_URL"] or "").strip()
    if not database_url:
        raise SettingError("IMAGES_API_DATABASE_URL must not be empty")
    admin_token = values["IMAGES_API_ADMIN_TOKEN"] or None
    if admin_token is not None and not ADMIN_TOKEN_PATTERN.fullmatch(admin_token):
        raise SettingError("IMAGES_API_ADMIN_TOKEN must be 32 or more printable ASCII characters, no spaces")
    return Settings(
        database_url=database_url,
        providers=provider_list("IMAGES_API_PROVIDERS", values["IMAGES_API_PROVIDERS"]),
        trust_remote_user=flag("IMAGES_API_TRUST_REMOTE_USER", values["IMAGES_API_TRUST_REMOTE_USER"]),
        admin_token=admin_token,
        create_admin=flag("IMAGES_API_CREATE_ADMIN", values["IMAGES_API_CREATE_ADMIN"]),
        auto_upgrade=flag("IMAGES_API_AUTO_UPGRADE", values["IMAGES_API_AUTO_UPGRADE"]),
        log_level=log_level("IMAGES_API_LOG_LEVEL", values["IMAGES_API_LOG_LEVEL"]),
        trusted_proxies=networks("IMAGES_API_TRUSTED_PROXY", values["IMAGES_API_TRUSTED_PROXY"]),
        threads=whole_number("IMAGES_API_THREADS", values["IMAGES_API_THREADS"], 1, MAX_THREADS),
    )
