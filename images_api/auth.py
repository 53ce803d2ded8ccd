"""Users, tokens and the policy each route requires (README: Authentication)."""

import functools
import hashlib
import re
import secrets
import sys

from flask import abort, g, request
from peewee import IntegrityError
from werkzeug.exceptions import Unauthorized

from .db import database, keep, kept, lookup
from .models import FirstStart, User
from .state import current_api

POLICIES = ("read_images", "create_image", "delete_image")

#: A user name: it goes in Basic auth (so no ':') and in ``REMOTE_USER``.
USER_NAME = re.compile(r"[^\s:\x00-\x1f\x7f]{1,64}")
#: Key in ``flask.g`` of the name of the user a request speaks for, or claims to (for the
#: access log, even when no such user exists): not ``user``, which a host app may use.
USER = "images_api_user"
REALM = "images-api"


class BearerChallenge(Unauthorized):
    """401 that tells the client how to authenticate (README: Errors, 401)."""

    description = "Authentication required: send 'Authorization: Bearer <token>' or Basic with your user name and token."

    def get_headers(self, environ=None, scope=None):
        return [("WWW-Authenticate", f'Bearer realm="{REALM}"')]


def new_token():
    """A fresh API token: 256 random bits as 43 URL-safe characters."""
    return secrets.token_urlsafe(32)


def hash_token(token):
    """The hex SHA-256 of ``token`` (str), the only form a token is stored in.

    A token carries 256 random bits, so a fast hash is enough; it also lets
    the lookup go by hash, so no stored secret is compared byte by byte.
    """
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def check_policies(policies):
    """Return ``policies`` (names) as a sorted tuple; raise ``ValueError`` naming any unknown one."""
    unknown = sorted(set(policies) - set(POLICIES))
    if unknown:
        raise ValueError(f"unknown policy {', '.join(map(repr, unknown))}; known: {', '.join(POLICIES)}")
    return tuple(sorted(set(policies)))


def add_user(name, policies, token=None):
    """Create user ``name`` with ``policies``; return its token (given or fresh).

    Raises ``ValueError`` for an unknown policy or a name that exists. Runs in
    the app context of the database to write to.
    """
    policies = check_policies(policies)
    token = token or new_token()
    try:
        with database.atomic():
            User.create(name=name, policies=" ".join(policies), token_hash=hash_token(token))
    except IntegrityError:
        raise ValueError(f"user {name!r} exists") from None
    return token


def first_start(token=None):
    """The database's first start, once in its life: create ``admin`` with every policy, unless users exist.

    The token is ``token`` when given; else a fresh one, printed once to
    standard error. Later starts create nobody, even with no users left; a
    ``token`` given then is not used, and one warning line says so (README:
    Users and tokens). Returns True if it created ``admin``.
    """
    try:
        with database.atomic():
            if FirstStart.select().exists():
                created = None  # done before
            else:
                FirstStart.create(id=1)
                created = not User.select().exists()
                if created:
                    fresh = add_user("admin", POLICIES, token)
    except IntegrityError:  # another instance's first start, at the same moment
        return False
    if created is None and token:
        print("images-api: IMAGES_API_ADMIN_TOKEN was not used: this database's first start is done", file=sys.stderr, flush=True)
    if created and token is None:
        print(
            "images-api: first start, created user 'admin' with every policy. "
            "Its API token, shown only this once:\n" + fresh,
            file=sys.stderr,
            flush=True,
        )
    return bool(created)


def authenticate():
    """The ``User`` the request speaks for; abort 401 or 403 when there is none.

    With ``IMAGES_API_TRUST_REMOTE_USER`` on, the WSGI ``REMOTE_USER`` set by
    the server names the user and ``Authorization`` is ignored; a name not in
    the user table is 403. Otherwise Bearer or Basic (name, token) is required.
    """
    this = request._get_current_object()  # read once: each read through the proxy finds it again
    remote_user = this.environ.get("REMOTE_USER") if current_api.settings.trust_remote_user else None
    if remote_user:
        name = utf8(remote_user)
        setattr(g, USER, name or remote_user)
        user = lookup(User, User.name, name) if name and USER_NAME.fullmatch(name) else None
        if user is None:
            abort(403, f"User {name or remote_user!r} is not an images-api user.")
        return user

    header = this.headers.get("Authorization", "")
    # The user these credentials named, kept on SQLite until the database
    # changes (sqlite.ReadRows): a reset token fails at once. Kept by the
    # header's hash, as tokens are stored.
    credentials_key = ("credentials", hash_token(header))
    user = kept(credentials_key)
    if user is not None:
        return user
    # A non-ASCII header never holds a token, and werkzeug's Basic parser
    # raises on one instead of returning None.
    if not header.isascii():
        raise BearerChallenge("The Authorization header is not ASCII.")
    credentials = this.authorization
    if credentials is None:
        raise BearerChallenge()
    if credentials.type == "bearer":
        token, name = credentials.token, None
    elif credentials.type == "basic":
        token, name = credentials.password, credentials.username
    else:
        raise BearerChallenge()
    if not token:
        raise BearerChallenge()
    user = lookup(User, User.token_hash, hash_token(token))
    if user is None or (name is not None and name != user.name):
        raise BearerChallenge("Unknown user or token.")
    keep(credentials_key, user)
    return user


def utf8(environ_value):
    """A WSGI environ string (its bytes carried as Latin-1, PEP 3333) read as the UTF-8 it is; None when it is not."""
    try:
        return environ_value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return None


def policy_required(policy):
    """Decorate a view so that only a user holding ``policy`` reaches it.

    Answers 401 without valid credentials and 403 when the user lacks the
    policy (README: Errors, checked in that order); keeps the user's name in
    ``g`` under ``USER``.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}")

    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            user = authenticate()
            setattr(g, USER, user.name)
            if policy not in user.policy_set:
                abort(403, f"User {user.name!r} lacks the {policy!r} policy.")
            return view(*args, **kwargs)

        wrapped.policy = policy  # read by the OpenAPI document
        return wrapped

    return decorator
