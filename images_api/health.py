"""``GET /healthz``: whether the service can answer, for load balancers and probes."""

from flask import Blueprint, current_app, jsonify
from peewee import DatabaseError

from .errors import error_response
from .models import database

bp = Blueprint("images_api_health", __name__)


@bp.get("/healthz")
def healthz():
    """200 ``{"status": "ok"}`` when the database answers a query, else 503; no credentials."""
    try:
        # The thread's connection stays open, as the API's own hook leaves it:
        # closing it on every probe would reopen it (pragmas, WAL files) on the
        # next request.
        database.connect(reuse_if_open=True)
        database.execute_sql("SELECT 1")
    except DatabaseError as error:
        current_app.logger.warning("health check failed: %s", error)
        return error_response(503, "The database does not answer.")
    return jsonify(status="ok")
