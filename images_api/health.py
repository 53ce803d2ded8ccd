"""``GET /healthz``: whether the service can answer, for load balancers and probes."""

from flask import Blueprint, current_app, jsonify

from . import db
from .errors import http_error

bp = Blueprint("images_api_health", __name__)


@bp.get("/healthz")
def healthz():
    """200 ``{"status": "ok"}`` when the database answers a query, else the API's 503; no credentials."""
    failure = db.health()
    if failure is not None:
        current_app.logger.warning("health check failed: %s", failure.description)
        return http_error(failure)
    return jsonify(status="ok")
