"""Export and import a whole catalogue as JSON Lines (README: Moving to another database).

The first line names the format and its version; each further line is one
record, ``{"type": "image", ...}`` with an image's four fields or
``{"type": "user", "name": ..., "policies": [...], "token_hash": ...}``. Tokens
never appear, only their SHA-256, so users' tokens keep working after a move.
"""

import json

from marshmallow import RAISE, Schema, ValidationError, fields, validate
from peewee import PostgresqlDatabase

from .auth import POLICIES, USER_NAME
from .db import database, snapshot
from .models import FirstStart, Image, User
from .parsing import strict_loads

FORMAT = "images-api-export"
VERSION = 1
BATCH = 1000  # rows per INSERT: within every database's limit on bound parameters


class TransferError(ValueError):
    """A file that cannot be imported, or a database it cannot go into; the message says which line and field."""


def user_name(value):
    """Reject a name no user can have (``auth.USER_NAME``)."""
    if not USER_NAME.fullmatch(value):
        raise ValidationError("Not a user name: 1-64 characters, no spaces, control characters or ':'.")


class UserRecordSchema(Schema):
    """A user as an export carries it: name, policies, the SHA-256 of its token."""

    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=user_name)
    policies = fields.List(fields.String(validate=validate.OneOf(POLICIES)), required=True)
    token_hash = fields.String(required=True, validate=validate.Regexp(r"[0-9a-f]{64}\Z", error="Not a SHA-256 in lowercase hex."))


def export(out):
    """Write every image and every user to ``out`` (a text stream), read in one consistent snapshot.

    Returns (images, users) counted. The service may go on writing meanwhile.
    """
    header = {"format": FORMAT, "version": VERSION}
    out.write(json.dumps(header) + "\n")
    counts = [0, 0]
    with snapshot(database.obj):
        for row in Image.select(Image.id, Image.provider, Image.remote_user, Image.name).order_by(Image.id).tuples().iterator():
            record = dict(zip(("id", "provider", "remote_user", "name"), row))
            out.write(json.dumps({"type": "image", **record}, ensure_ascii=False) + "\n")
            counts[0] += 1
        for name, policies, token_hash in User.select(User.name, User.policies, User.token_hash).order_by(User.name).tuples().iterator():
            record = {"type": "user", "name": name, "policies": sorted(policies.split()), "token_hash": token_hash}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            counts[1] += 1
    return tuple(counts)


def records(lines, image_schema):
    """Check every line of an export (an iterable of text lines); yield ``(kind, row)`` for each record.

    ``image_schema`` is the app's ``ImageSchema``, the API's own rules.
    Raises ``TransferError`` naming the first bad line and field.
    """
    schemas = {"image": image_schema, "user": UserRecordSchema()}
    seen = {"image": {}, "user": {}, "token_hash": {}}
    number = 0
    for number, line in enumerate(lines, 1):
        if not line.endswith("\n"):
            raise TransferError(f"line {number}: cut short (no end of line): the file is truncated")
        try:
            record = strict_loads(line)  # as the API reads a body: NaN and a key given twice refused
        except ValueError as error:
            raise TransferError(f"line {number}: not JSON: {error}") from None
        except RecursionError:
            raise TransferError(f"line {number}: not JSON this reads: nested too deep") from None
        if number == 1:
            check_header(record)
            continue
        if not isinstance(record, dict) or record.get("type") not in schemas:
            raise TransferError(f'line {number}: not a record: an object whose "type" is "image" or "user"')
        kind = record.pop("type")
        try:
            row = schemas[kind].load(record)
        except ValidationError as error:
            field, messages = next(iter(error.normalized_messages().items()))
            raise TransferError(f"line {number}: {field}: {' '.join(map(str, flatten(messages)))}") from None
        key = row["id"] if kind == "image" else row["name"]
        for space, value in ((kind, key), ("token_hash", row.get("token_hash"))):
            if value is None:
                continue
            if value in seen[space]:
                raise TransferError(f"line {number}: {space} {value!r} is on line {seen[space][value]} already")
            seen[space][value] = number
        yield kind, row
    if number == 0:
        raise TransferError("line 1: the file is empty; an export starts with its format line")


def flatten(messages):
    """The strings of marshmallow's messages, however nested."""
    if isinstance(messages, dict):
        return [text for value in messages.values() for text in flatten(value)]
    if isinstance(messages, list):
        return [text for value in messages for text in flatten(value)]
    return [messages]


def check_header(record):
    """Raise ``TransferError`` unless ``record`` is the format line of a version this code reads."""
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise TransferError(f'line 1: not an images-api export: the first line must be {{"format": "{FORMAT}", "version": {VERSION}}}')
    version = record.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise TransferError("line 1: the format version is not a whole number")
    if version > VERSION:
        raise TransferError(f"line 1: format version {version} is newer than this images-api reads ({VERSION}): import it with a newer one")


def load(lines, image_schema, replace=False):
    """Import an export (``lines``, an iterable of text lines) in one transaction: every record or none.

    Returns (images, users) imported. The database must have no images and
    no users unless ``replace``, which deletes them in the same transaction.
    Marks the first start done: the catalogue comes with its users. Raises
    ``TransferError``, and then nothing has changed.
    """
    counts = {"image": 0, "user": 0}
    batches = {"image": [], "user": []}
    with database.atomic():
        if isinstance(database.obj, PostgresqlDatabase):
            # Writers wait for the import, as SQLite's write lock and
            # MariaDB's locks on the deleted rows make them; reads go on.
            database.execute_sql("LOCK TABLE images, users IN EXCLUSIVE MODE")
        if replace:
            Image.delete().execute()
            User.delete().execute()
        elif Image.select().exists() or User.select().exists():
            raise TransferError("the database is not empty: import into a new one, or give --replace to replace its contents")
        for kind, row in records(lines, image_schema):
            if kind == "user":
                row = {**row, "policies": " ".join(sorted(set(row["policies"])))}
            batches[kind].append(row)
            counts[kind] += 1
            if len(batches[kind]) == BATCH:
                insert(kind, batches[kind])
                batches[kind] = []
        for kind, rows in batches.items():
            insert(kind, rows)
        if not FirstStart.select().exists():
            FirstStart.create(id=1)
    return counts["image"], counts["user"]


def insert(kind, rows):
    """Insert ``rows`` (dicts) of ``kind`` ("image" or "user") in one statement."""
    if rows:
        (Image if kind == "image" else User).insert_many(rows).execute()
