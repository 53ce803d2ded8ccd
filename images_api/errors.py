"""Every error as one JSON shape: ``{"message": ..., "errors": {...}?}`` (README: Errors)."""

from urllib.parse import unquote_to_bytes

from flask import current_app, jsonify, request
from marshmallow import ValidationError
from peewee import PeeweeException
from playhouse.pool import MaxConnectionsExceeded
from werkzeug.exceptions import HTTPException, NotFound, default_exceptions
from werkzeug.routing import RequestRedirect

from . import failures

#: Headers of an ``HTTPException`` that describe its HTML page, not the error.
PAGE_HEADERS = {"content-type", "content-length"}


def error_response(status, message, errors=None, headers=()):
    """A JSON error response: ``status`` (int), ``message`` (str), optional ``errors`` dict."""
    body = {"message": message}
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    response.headers.extend(headers)
    return response


def http_error(error):
    """Render a werkzeug ``HTTPException`` (404, 405 with ``Allow``, 401, ...) as JSON."""
    headers = [(name, value) for name, value in error.get_headers() if name.lower() not in PAGE_HEADERS]
    return error_response(error.code, error.description, headers=headers)


def validation_error(error):
    """Render a marshmallow ``ValidationError`` as 400 naming each field and its broken rules."""
    errors = error.normalized_messages()
    if not isinstance(errors, dict):
        errors = {"_schema": errors}
    general = errors.get("_schema")
    # An empty name ('{"": 1}', '?=1') is still a field to name.
    fields = ", ".join(sorted(key or '""' for key in errors if key != "_schema"))
    if fields:
        message = f"Invalid input: {fields}."
    else:
        message = " ".join(general)
    return error_response(400, message, errors)


def database_error(error):
    """A database that is busy or cannot answer is a 503 with ``Retry-After``; any other database error a 500."""
    failure = failures.failure(error)
    if failure is None:
        current_app.logger.exception("database error")
        return internal_error(error)
    current_app.logger.warning("%s (%s)", failure.description, " ".join(str(error).split()))
    return http_error(failure)


def internal_error(error):
    """Anything unexpected: a bare 500 message; Flask has logged the traceback."""
    return error_response(500, "Internal server error")


def routing_errors_where(is_api_path):
    """A before-request hook answering routing failures with JSON where ``is_api_path(path)``.

    Flask raises 404 and 405 before any blueprint is chosen, so the
    blueprint's handlers never see them; this hook does, without touching the
    host app's handlers for its own paths. A redirect (``//v3//images``) is
    answered as 404: the API never redirects.
    """

    def routing_error():
        this = request._get_current_object()  # read once: each read through the proxy finds it again
        if not is_api_path(this.path):
            return None
        error = this.routing_exception
        if error is None and rewritten_target(this.environ):
            error = NotFound()
        if error is None:
            return None
        if isinstance(error, RequestRedirect):
            error = NotFound()
        return http_error(error)

    return routing_error


def rewritten_target(environ):
    """Whether the server changed the target of the request with ``environ`` before the app saw it (README: Errors).

    waitress drops a path's leading slashes after the first (``//v3/images``)
    and, through ``urlsplit``, tabs and newlines, in the path and the query
    (``/v3/image/u<TAB>3`` became ``u3``). Its ``REQUEST_URI`` keeps the
    target as sent: the query must be the one parsed, and the path routed
    must end the one sent, and not after a slash. A prefix before it (a
    mount, a proxy's) is another's business.
    """
    raw = environ.get("REQUEST_URI")
    if raw is None:  # a server that does not say
        return False
    query = environ.get("QUERY_STRING", "")
    if not environ.get("SCRIPT_NAME") and "%" not in raw and raw == environ.get("PATH_INFO", "") + ("?" + query if query else ""):
        return False  # most requests: sent as routed, nothing escaped
    path, _, query = raw.partition("#")[0].partition("?")
    sent = unquote_to_bytes(path).decode("latin-1")
    routed = environ.get("PATH_INFO", "")
    if query != environ.get("QUERY_STRING", ""):
        return True
    return not sent.endswith(routed) or sent[: len(sent) - len(routed)].endswith("/")


def register(target):
    """Register the JSON handlers on ``target`` (the blueprint, or a standalone app).

    Handlers go in by status code as well as by class: Flask looks for a
    host app's handler for a code (``@app.errorhandler(404)``) before a
    blueprint's handler for a class, and the API's errors must stay JSON.
    """
    for code in default_exceptions:
        target.register_error_handler(code, internal_error if code == 500 else http_error)
    target.register_error_handler(HTTPException, http_error)
    target.register_error_handler(ValidationError, validation_error)
    target.register_error_handler(PeeweeException, database_error)
    target.register_error_handler(MaxConnectionsExceeded, database_error)
