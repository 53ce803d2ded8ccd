"""The ``/v3`` blueprint: five routes over images (README: The API)."""

from flask import Blueprint, abort, current_app, jsonify, request, url_for
from marshmallow import ValidationError
from peewee import SQL, IntegrityError

from . import db, errors, listing, openapi
from .auth import policy_required
from .conditional import check_preconditions, etag_of, not_modified, validated
from .db import database, lookup, write_transaction
from .models import Image
from .state import current_api
from .parsing import parse
from .responses import ImageCreatedSchema, ImageDeletedSchema, ImageUpdatedSchema, ShownImageSchema, responses
from .schemas import ImageQuerySchema, ImageSchema, ImageUpdateSchema, NoQuerySchema, is_image_id

bp = Blueprint("images_api", __name__, url_prefix="/v3")
errors.register(bp)

#: Fields an update may carry only to send back what was read.
FIXED_FIELDS = ("id", "provider")


bp.before_request(db.connect)


@bp.after_request
def empty_options(response):
    """Flask's automatic OPTIONS answer has no body: say so with 204, not an HTML type."""
    if request.method == "OPTIONS" and not response.get_data():
        response.status_code = 204
        del response.headers["Content-Type"]
    return response


def is_api_path(path):
    """Whether ``path`` (below any mount prefix) is one of the API's."""
    return path == bp.url_prefix or path.startswith(bp.url_prefix + "/")


def image_schema():
    """The app's ``ImageSchema``, which shapes every image in a response."""
    return current_api.image_schema


def shown(image):
    """``image`` (an ``Image``) as every response shows it: the ``ImageSchema`` fields.

    Read straight off the instance: the fields are plain strings, and a
    marshmallow dump of them was a sixth of an authorized GET.
    """
    return {name: getattr(image, name) for name in image_schema().dump_fields}


def image_body(image):
    """The bytes ``GET /v3/image/<id>`` sends for ``image``, whose ETag a write compares and sends back."""
    return jsonify(shown(image)).get_data()


def get_image_or_404(image_id, for_update=False):
    """The ``Image`` with ``image_id``; abort 404 when there is none (without a query when the id is malformed)."""
    image = lookup(Image, Image.id, image_id, for_update) if is_image_id(image_id) else None
    if image is None:
        not_found(image_id)
    return image


def not_found(image_id):
    """Abort 404, naming ``image_id`` only when it is a well-formed id (never echo junk)."""
    if is_image_id(image_id):
        abort(404, f"Image {image_id!r} not found.")
    abort(404, "No image has this id: it breaks the id rule.")


@bp.get("/images", merge_slashes=False)
@responses(
    "The images, in code point order of `id`.",
    ShownImageSchema(many=True),
    headers=("Link", "ETag", "Cache-Control"),
    condition="If-None-Match",
)
@policy_required("read_images")
@parse(query=ImageQuerySchema)
def list_images(query):
    """List images in code point order of id, a page at a time when ``limit`` is given."""
    # A page's ETag, kept on SQLite until the database changes, answers an
    # unchanged page's 304 without reading it (README: Conditional requests).
    page = ("listing", query.get("provider"), query.get("limit"), query.get("marker"))
    etag = db.kept(page)
    if etag is not None and (unchanged := not_modified(etag)):
        return unchanged
    # Each image as JSON, written by the database (images_api/listing.py).
    images = Image.select(Image.id, SQL(listing.image_object(database.obj)).alias("obj")).order_by(Image.id)
    if "provider" in query:
        images = images.where(Image.provider == query["provider"])
    if "marker" in query:
        images = images.where(Image.id > query["marker"])
    limit = query.get("limit")
    if limit:
        # One row past the page tells whether another page follows.
        rows = database.execute(images.limit(limit + 1)).fetchall()  # (id, JSON text) of each image
        objects, last = [text for _, text in rows[:limit]], rows[limit - 1][0] if len(rows) > limit else None
    else:
        objects, last = listing.every_object(database.obj, images), None
    response = current_app.response_class(listing.body(objects), mimetype=current_app.json.mimetype)
    following = b""
    if last is not None:
        next_url = url_for(".list_images", _external=True, **{**query, "marker": last})
        response.headers["Link"] = f'<{next_url}>; rel="next"'
        following = b"\n" + last.encode()
    # The page is its body and whether a next one follows: a client that
    # revalidates the last page must learn that images came after it.
    etag = etag_of(response.get_data() + following)
    db.keep(page, etag)
    return validated(response, etag)


@bp.post("/image", merge_slashes=False)
@responses(
    "Created (200, not 201: the API's first document says so).",
    ImageCreatedSchema(),
    headers=("Location",),
    links={"show_image": "/id", "update_image": "/id", "delete_image": "/id"},
    errors=(409,),
)
@policy_required("create_image")
@parse(query=NoQuerySchema, body=ImageSchema)
def create_image(query, body):
    """Create an image; 409 when its id exists."""
    try:
        with write_transaction():
            Image.create(**body)
    except IntegrityError:
        abort(409, f"Image {body['id']!r} already exists.")
    response = jsonify(id=body["id"], message="Created")
    response.headers["Location"] = url_for(".show_image", image_id=body["id"], _external=True)
    return response


@bp.get("/image/<image_id>", merge_slashes=False)
@responses(
    "The image.",
    ShownImageSchema(),
    headers=("ETag", "Cache-Control"),
    errors=(404,),
    condition="If-None-Match",
)
@policy_required("read_images")
@parse(query=NoQuerySchema)
def show_image(image_id, query):
    """Show one image."""
    # Its body and ETag, kept on SQLite until the database changes (sqlite.ReadRows).
    kept = db.kept(("image", image_id))
    if kept is None:
        body = image_body(get_image_or_404(image_id))
        kept = (body, etag_of(body))
        db.keep(("image", image_id), kept)
    body, etag = kept
    return validated(current_app.response_class(body, mimetype=current_app.json.mimetype), etag)


@bp.put("/image/<image_id>", merge_slashes=False)
@responses(
    "Updated; the image as it is now, and in `ETag` the ETag a GET of it now gives.",
    ImageUpdatedSchema(),
    headers=("ETag",),
    links={"show_image": "/image/id", "delete_image": "/image/id"},
    errors=(404,),
    condition="If-Match",
)
@policy_required("create_image")
@parse(query=NoQuerySchema, body=ImageUpdateSchema)
def update_image(image_id, query, body):
    """Change an image's remote_user and/or name; id and provider never change."""
    with write_transaction():
        image = get_image_or_404(image_id, for_update=True)
        check_preconditions(etag_of(image_body(image)))
        changed = {
            field: ["Cannot be changed."]
            for field in FIXED_FIELDS
            if field in body and body[field] != getattr(image, field)
        }
        if changed:
            raise ValidationError(changed)
        for field in ("remote_user", "name"):
            if field in body:
                setattr(image, field, body[field])
        image.save()
    response = jsonify(image=shown(image), message="Updated")
    response.set_etag(etag_of(image_body(image)))  # of the image as GET now sends it
    return response


@bp.delete("/image/<image_id>", merge_slashes=False)
@responses(
    "Deleted.",
    ImageDeletedSchema(),
    links={"show_image": "/id"},
    errors=(404,),
    condition="If-Match",
)
@policy_required("delete_image")
@parse(query=NoQuerySchema)
def delete_image(image_id, query):
    """Delete an image."""
    if not is_image_id(image_id):
        not_found(image_id)
    with write_transaction():
        if "If-Match" in request.headers or "If-None-Match" in request.headers:
            check_preconditions(etag_of(image_body(get_image_or_404(image_id, for_update=True))))
        deleted = Image.delete().where(Image.id == image_id).execute()
    if not deleted:
        not_found(image_id)
    return jsonify(id=image_id, message="Deleted")


@bp.get("/openapi.json", merge_slashes=False)
@parse(query=NoQuerySchema)
def openapi_document(query):
    """The OpenAPI 3 document of this API; no credentials needed."""
    return openapi.response()
