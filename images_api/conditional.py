"""Conditional requests (README: Conditional requests): strong ETags of what is sent, 304 and 412.

An ETag is 128 bits of the SHA-256 of the exact body a ``GET`` sends, so it
changes exactly when the representation does, on every backend. ``GET`` and
``HEAD`` answer 304 to a matching ``If-None-Match`` (weak comparison, as RFC
9110 asks); ``PUT`` and ``DELETE`` refuse a non-matching ``If-Match`` with 412
(strong comparison), and a matching ``If-None-Match`` likewise, decided in
the transaction of the write.
"""

import hashlib

from flask import abort, current_app, request

#: Clients may keep a copy, and must revalidate it before each use.
CACHE_CONTROL = "no-cache"


def etag_of(body):
    """The strong ETag (without quotes) of ``body``, the bytes a ``GET`` sends."""
    return hashlib.sha256(body).hexdigest()[:32]


def not_modified(etag):
    """A 304 for ``etag`` when the request's ``If-None-Match`` matches it (weakly, or ``*``); else None."""
    if "If-None-Match" not in request.headers or not request.if_none_match.contains_weak(etag):
        return None
    response = current_app.response_class(status=304)
    response.set_etag(etag)
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response


def validated(response, etag):
    """``response``, a 200 to ``GET`` or ``HEAD`` whose body has ``etag``, with its validators; or the 304 that replaces it."""
    response.headers.extend([("ETag", f'"{etag}"'), ("Cache-Control", CACHE_CONTROL)])  # a hex ETag needs no escaping
    return not_modified(etag) or response


def check_preconditions(etag):
    """Abort 412 unless the write's preconditions hold for ``etag``, the image's now (RFC 9110, 13.1).

    ``If-Match`` must name it or be ``*`` (strong comparison); ``If-None-Match``
    must not name it nor be ``*`` (weak comparison). Called inside the
    write's transaction, with the image read for update, so that no other
    write comes between the comparison and this one.
    """
    if "If-Match" in request.headers and not request.if_match.contains(etag):
        abort(412, "The image has changed since the ETag in If-Match was read: read it again.")
    if "If-None-Match" in request.headers and request.if_none_match.contains_weak(etag):
        abort(412, "If-None-Match names the image as it is now (or is *): nothing was changed.")
