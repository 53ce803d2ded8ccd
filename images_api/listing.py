"""A listing's body, written by the database (README: The API; bench/README.md, "full listing").

Encoding ten thousand rows with ``json.dumps`` took twice as long as reading
them. Each database writes every image as the JSON object ``flask.jsonify``
writes for it, compact and with sorted keys, and Python only joins them (on
SQLite, a full listing is joined by SQLite: ``every_object``). The
databases leave text outside ASCII as it is, where Flask writes ``\\uXXXX``:
``ascii_json`` does that. The bytes are then those of ``jsonify(rows)``,
which ``GET /v3/image/<id>`` and every other response still use: one
representation on every backend, and one ETag for one listing.
"""

import re

import peewee

from .schemas import ImageSchema
from .sqlite import SqliteDatabase

#: The keys of an image in a response (its columns too), in the order Flask's JSON writes them: sorted.
KEYS = tuple(sorted(ImageSchema().dump_fields))


def image_object(db):
    """SQL for one image as a JSON object on ``db`` (a peewee database): what ``json.dumps(..., ensure_ascii=False)`` writes.

    Every database escapes ``"``, ``\\`` and control characters as Python
    does, and leaves the rest as it is (tested on each backend).
    """
    if isinstance(db, peewee.SqliteDatabase):
        return "json_object(" + ", ".join(f"'{key}', {key}" for key in KEYS) + ")"
    if isinstance(db, peewee.PostgresqlDatabase):  # json_build_object would write '"id" : ...'
        return " || ".join(f"""'{"{" if n == 0 else ","}"{key}":' || to_json({key})""" for n, key in enumerate(KEYS)) + " || '}'"
    parts = ", ".join(f"""'{"{" if n == 0 else ","}"{key}":', JSON_QUOTE({key})""" for n, key in enumerate(KEYS))
    return f"CONCAT({parts}, '}}')"  # MariaDB's JSON_OBJECT writes '"id": ...'


def every_object(db, images):
    """The JSON text of every image the query ``images`` selects, for ``body``.

    ``images`` selects each image's ``id`` and its ``image_object`` as ``obj``,
    in ``id`` order. APSW lets go of the GIL at each row it steps to, and with
    listings served side by side those hand-overs cost more than the rows:
    SQLite joins the objects itself, in one row (its ``ORDER BY`` within an
    aggregate needs SQLite 3.44, which APSW carries). Other drivers fetch
    their rows without letting go between them.
    """
    if not isinstance(db, SqliteDatabase):  # images_api.sqlite's, through APSW
        return [text for _, text in db.execute(images).fetchall()]
    sql, params = images.sql()
    joined = db.execute_sql(f"SELECT group_concat(obj, ',' ORDER BY id) FROM ({sql})", params).fetchone()[0]
    return [] if joined is None else [joined]


def body(objects):
    """The response body (``str``) of a listing of ``objects``, each an image's JSON text from ``image_object``."""
    return ascii_json("[" + ",".join(objects) + "]\n")


NON_ASCII = re.compile(r"[^\x00-\x7f]")


def ascii_json(text):
    """``text`` (JSON) with every character outside ASCII written ``\\uXXXX``, as ``json.dumps`` writes it by default."""
    if text.isascii():
        return text
    return NON_ASCII.sub(escaped, text)


def escaped(match):
    code = ord(match.group())
    if code > 0xFFFF:  # a surrogate pair, as JSON writes characters beyond the BMP
        code -= 0x10000
        return f"\\u{0xD800 | code >> 10:04x}\\u{0xDC00 | code & 0x3FF:04x}"
    return f"\\u{code:04x}"
