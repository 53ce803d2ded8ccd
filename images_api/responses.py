"""What each operation answers, declared beside its route with ``@responses`` (README: The API, Errors).

A view carries its 200 (the body's schema, its headers and links), the errors
only it gives and the condition header it honours, as it carries its policy
(``policy_required``) and schemas (``parse``); ``openapi.py`` reads all three
off the view. The bodies, headers and error responses those name live here.
"""

from dataclasses import dataclass

from marshmallow import Schema, fields, validate

from .auth import REALM
from .parsing import JSON, MAX_BODY
from .schemas import ImageSchema, image_id, image_name


class ShownImageSchema(ImageSchema):
    """An image as every response shows it: exactly the four fields."""

    name = image_name(required=True)


def message(text):
    return fields.String(required=True, validate=validate.OneOf([text]))


class ImageCreatedSchema(Schema):
    id = image_id(required=True)
    message = message("Created")


class ImageUpdatedSchema(Schema):
    image = fields.Nested(ShownImageSchema, required=True)
    message = message("Updated")


class ImageDeletedSchema(Schema):
    id = image_id(required=True)
    message = message("Deleted")


class ErrorSchema(Schema):
    message = fields.String(required=True)
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


def error(description, **headers):
    response = {"description": description, "content": {JSON: {"schema": ErrorSchema()}}}
    if headers:
        response["headers"] = headers
    return response


def header(description, schema, required=True):
    return {"description": description, "required": required, "schema": schema}


#: Error responses by status, each with its component name (README: Errors).
ERRORS = {
    400: (
        "BadRequest",
        error(
            "A query parameter is unknown, given twice or breaks its rule, or the body is not a "
            "UTF-8 JSON object or a field breaks its rule; `errors` names each field."
        ),
    ),
    401: (
        "Unauthorized",
        error(
            "No credentials, or an unknown or malformed token.",
            **{"WWW-Authenticate": header("How to authenticate.", {"type": "string", "enum": [f'Bearer realm="{REALM}"']})},
        ),
    ),
    403: ("Forbidden", error("The user lacks the operation's policy; the message names it.")),
    404: ("NotFound", error("No image has this id.")),
    406: ("NotAcceptable", error("The `Accept` header admits no `application/json`.")),
    409: ("Conflict", error("An image with this id exists; nothing changed.")),
    412: ("PreconditionFailed", error("`If-Match` names neither the image's current ETag nor `*`; nothing changed.")),
    413: ("PayloadTooLarge", error(f"The body is over {MAX_BODY // 1024} KiB.")),
    415: ("UnsupportedMediaType", error("The body is not sent as `Content-Type: application/json`.")),
    500: ("InternalServerError", error("Anything unexpected; logged on the server.")),
    503: (
        "ServiceUnavailable",
        error(
            "The database is busy or cannot answer; the message says which: retry.",
            **{"Retry-After": header("Seconds to wait before retrying.", {"type": "integer", "minimum": 0})},
        ),
    ),
}
#: What every operation can answer: ``policy_required``'s 401 and 403, ``parse``'s 400
#: and 406, and the database's 500 and 503; ``parse`` with a body adds 413 and 415.
COMMON_ERRORS = frozenset({400, 401, 403, 406, 500, 503})
BODY_ERRORS = frozenset({413, 415})

ETAG = header(
    "A strong validator of exactly this representation: send it back in `If-None-Match` (GET) or `If-Match` (PUT, DELETE).",
    {"type": "string", "pattern": '^"[0-9a-f]{32}"$'},
)
CACHE_CONTROL = header("`no-cache`: a client may keep a copy, and must revalidate it before each use.", {"type": "string", "enum": ["no-cache"]})
#: The headers a 200 may carry, by the name ``@responses(headers=...)`` gives.
HEADERS = {
    "ETag": ETAG,
    "Cache-Control": CACHE_CONTROL,
    "Link": header(
        'When `limit` cut the page short and more images follow: `<URL>; rel="next"`, the next page.',
        {"type": "string", "pattern": '^<[^>]+>; rel="next"$'},
        required=False,
    ),
    "Location": header("The new image's URL.", {"type": "string", "format": "uri"}),
}
NOT_MODIFIED = {
    "description": "Not modified: `If-None-Match` names this representation's ETag (or `*`). No body.",
    "headers": {"ETag": ETAG, "Cache-Control": CACHE_CONTROL},
}
#: The request headers of README: Conditional requests: the parameter's description,
#: and what a view that honours one can answer for it: 304 (``NOT_MODIFIED``) or 412.
CONDITIONS = {
    "If-None-Match": ("ETags of copies the client has, or `*`: a 304 without a body when one matches (weak comparison).", 304),
    "If-Match": ("ETags the image must have now, or `*`: a 412 and no change when none matches (strong comparison).", 412),
}


@dataclass(frozen=True)
class Responses:
    """What one view answers: ``success``, its 200 (an OpenAPI response object); ``errors``,
    the statuses only it gives; ``condition``, the ``CONDITIONS`` header it honours, or None."""

    success: dict
    errors: frozenset
    condition: str | None

    def document(self, reads_body):
        """The operation's ``responses``: each status, an error's by its component name (``ERRORS``)."""
        answers = {"200": self.success}
        errors = COMMON_ERRORS | self.errors | (BODY_ERRORS if reads_body else frozenset())
        if self.condition and CONDITIONS[self.condition][1] == 304:
            answers["304"] = NOT_MODIFIED
        elif self.condition:
            errors |= {CONDITIONS[self.condition][1]}
        answers.update((str(status), ERRORS[status][0]) for status in sorted(errors))
        return answers


def responses(description, schema, *, headers=(), links=None, errors=(), condition=None):
    """Decorate a view with what it answers, kept as ``view.responses`` (a ``Responses``) for the OpenAPI document.

    Its 200 has ``description`` and a body of ``schema`` (a marshmallow Schema
    instance), the ``HEADERS`` named in ``headers``, and ``links`` (the operation
    id of a view, to the JSON pointer of the image's id in the body). ``errors``
    are the statuses only this view gives, beside ``COMMON_ERRORS``;
    ``condition`` is the ``CONDITIONS`` header it honours. The view itself is
    returned as it is.
    """
    success = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        success["headers"] = {name: HEADERS[name] for name in headers}
    if links:
        success["links"] = {
            operation: {"operationId": operation, "parameters": {"image_id": f"$response.body#{pointer}"}}
            for operation, pointer in links.items()
        }
    unknown = set(errors) - set(ERRORS)
    if unknown or (condition is not None and condition not in CONDITIONS):
        raise ValueError(f"no such error status or condition: {sorted(unknown) or condition!r}")
    record = Responses(success, frozenset(errors), condition)

    def decorator(view):
        view.responses = record
        return view

    return decorator
