"""Reading a request: the Accept, Content-Type, size and shape checks (contract: Errors).

``parse`` runs them in the contract's order (406, 415, 413, 400) after
``policy_required`` has run 401 and 403, and hands the view loaded data.
"""

import functools
import json

from flask import abort, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

#: Largest request body taken, in bytes (contract: Errors, 413).
MAX_BODY = 64 * 1024
JSON = "application/json"


class BadRequestBody(ValueError):
    """The body is not a UTF-8 JSON object."""


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


def accepts_json():
    """Whether the ``Accept`` header admits ``application/json`` with q > 0.

    No header, or an empty one, accepts anything.
    """
    if not request.headers.get("Accept", "").strip():
        return True
    return request.accept_mimetypes.quality(JSON) > 0


def read_json_object():
    """The request body as a dict: 415, 413 or 400 (in that order) when it is not one."""
    if request.mimetype != JSON:
        abort(415, "Send the body as 'Content-Type: application/json'.")
    # Set before anything touches the stream, so both a Content-Length over
    # the limit and a chunked body that runs past it are refused.
    request.max_content_length = MAX_BODY
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        abort(413, f"The body is over {MAX_BODY // 1024} KiB.")
    try:
        document = json.loads(
            raw.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_reject_duplicates
        )
    except UnicodeDecodeError:
        abort(400, "The body is not UTF-8.")
    except (ValueError, RecursionError) as error:  # RecursionError: nesting too deep
        abort(400, f"The body is not valid JSON: {error}.")
    if not isinstance(document, dict):
        abort(400, "The body must be a JSON object.")
    return document


def read_query():
    """The query string as a dict of strings; 400 when a parameter is given twice."""
    if not request.query_string:  # most requests: nothing to parse
        return {}
    repeated = sorted(key for key, values in request.args.lists() if len(values) > 1)
    if repeated:
        abort(400, f"Query parameter given more than once: {', '.join(repeated)}.")
    return request.args.to_dict()


def parse(query, body=None):
    """Decorate a view to receive ``query=`` (and ``body=`` when a body schema is given).

    ``query`` and ``body`` are marshmallow Schema classes; the app's instances
    of them (built once in ``init_app``) load the data, and a
    ``ValidationError`` becomes a 400 naming each field.
    """

    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if not accepts_json():
                abort(406, "This API answers only 'application/json'; the Accept header excludes it.")
            schemas = current_app.extensions["images_api"].schemas
            document = read_json_object() if body is not None else None
            kwargs["query"] = schemas[query].load(read_query())
            if body is not None:
                kwargs["body"] = schemas[body].load(document)
            return view(*args, **kwargs)

        return wrapped

    return decorator
