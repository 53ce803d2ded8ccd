"""Reading a request: the Accept, Content-Type, size and shape checks (README: Errors).

``parse`` runs them in the order of the README's error table (406, 415, 413, 400) after
``policy_required`` has run 401 and 403, and hands the view loaded data.
"""

import functools
import json

from flask import abort, request
from marshmallow import ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from .state import current_api

#: Largest request body taken, in bytes (README: Errors, 413).
MAX_BODY = 64 * 1024
JSON = "application/json"


class BadRequestBody(ValueError):
    """The body breaks a rule of JSON that Python's parser lets pass (NaN, a key twice)."""


def _reject_constant(name):
    raise BadRequestBody(f"{name} is not JSON")


def _reject_duplicates(pairs):
    """Build a dict, refusing a key given twice (which JSON leaves undefined)."""
    document = {}
    for key, value in pairs:
        if key in document:
            raise BadRequestBody(f"key {key!r} appears twice")
        document[key] = value
    return document


def strict_loads(text):
    """``json.loads`` as the API reads JSON: ``NaN`` and a key given twice are ``BadRequestBody``."""
    return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_reject_duplicates)


#: Media ranges that cover ``application/json``, most specific first.
JSON_RANGES = {JSON: 2, "application/*": 1, "*/*": 0}


def accepts_json(this):
    """Whether the ``Accept`` header of ``this`` request admits ``application/json`` with q > 0.

    No header, or an empty one, accepts anything. The most specific range
    decides (``application/json;q=0, */*`` refuses). Parameters are ignored:
    werkzeug would not match ``application/json; charset=utf-8`` to our
    ``application/json``, though a client sending it plainly wants JSON.
    """
    if not this.headers.get("Accept", "").strip():
        return True
    specificity, quality = -1, 0
    for value, q in this.accept_mimetypes:
        rank = JSON_RANGES.get(value.partition(";")[0].strip().lower(), -1)
        if rank > specificity:
            specificity, quality = rank, q
    return quality > 0


def read_json_object():
    """The request body as a dict: 415, 413 or 400 (in that order) when it is not one."""
    if request.mimetype != JSON:
        abort(415, "Send the body as 'Content-Type: application/json'.")
    # Set before anything touches the stream. One byte over the limit: on a
    # chunked body werkzeug stops quietly at the limit, so only a read that
    # gets past it tells a body of exactly 64 KiB from a longer one.
    request.max_content_length = MAX_BODY + 1
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raw = None
    if raw is None or len(raw) > MAX_BODY:
        abort(413, f"The body is over {MAX_BODY // 1024} KiB.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        abort(400, "The body is not UTF-8.")
    if text.startswith("\ufeff"):
        abort(400, "The body starts with a byte order mark; send plain UTF-8.")
    try:
        document = strict_loads(text)
    except json.JSONDecodeError as error:
        abort(400, f"The body is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}.")
    except BadRequestBody as error:
        abort(400, f"The body is not valid JSON: {error}.")
    except (ValueError, RecursionError):  # an integer of thousands of digits, or deep nesting
        abort(400, "The body is not JSON this API reads: a number too long or nesting too deep.")
    if not isinstance(document, dict):
        abort(400, "The body must be a JSON object.")
    return document


def read_query(this):
    """The query string of ``this`` request as a dict of strings; ``ValidationError`` naming any parameter given twice."""
    if not this.query_string:  # most requests: nothing to parse
        return {}
    repeated = {key: ["Given more than once."] for key, values in this.args.lists() if len(values) > 1}
    if repeated:
        raise ValidationError(repeated)
    return this.args.to_dict()


def parse(query, body=None):
    """Decorate a view to receive ``query=`` (and ``body=`` when a body schema is given).

    ``query`` and ``body`` are marshmallow Schema classes; the app's instances
    of them (``State.schema``) load the data, and a
    ``ValidationError`` becomes a 400 naming each field.
    """

    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            this = request._get_current_object()  # read once: each read through the proxy finds it again
            if not accepts_json(this):
                abort(406, "This API answers only 'application/json'; the Accept header excludes it.")
            document = read_json_object() if body is not None else None
            raw_query = read_query(this)
            # An empty query loads to {} under every query schema (none has a
            # default); skipping marshmallow then is a tenth of a GET.
            kwargs["query"] = current_api.schema(query).load(raw_query) if raw_query else {}
            if body is not None:
                kwargs["body"] = current_api.schema(body).load(document)
            return view(*args, **kwargs)

        # Read by the OpenAPI document, so it describes what is really loaded.
        wrapped.query_schema, wrapped.body_schema = query, body
        return wrapped

    return decorator
