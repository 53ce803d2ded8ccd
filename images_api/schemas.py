"""Marshmallow schemas: every rule an input must meet (README: The API).

Loading a schema is the only input check the views rely on; each raises
``marshmallow.ValidationError`` with a message per broken rule.
"""

import re
import unicodedata

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates, validates_schema

#: A provider's image id or a provider id: ASCII letters, digits and
#: ``. _ ~ : @ + -``, never ``.`` or ``..`` (they would read as paths).
#: ``\Z`` rather than ``$``, which would let a trailing newline through.
ID_PATTERN = r"(?!\.\.?\Z)[A-Za-z0-9._~:@+\-]+\Z"
ID_RULE = "Only ASCII letters, digits and . _ ~ : @ + - are allowed, and not '.' or '..'."

#: A login name as SSH and useradd take it.
REMOTE_USER_PATTERN = r"[A-Za-z_][A-Za-z0-9_.\-]*\Z"
REMOTE_USER_RULE = "Must start with an ASCII letter or '_', then ASCII letters, digits, '_', '.' or '-'."

MAX_LIMIT = 1000
LIMIT_RULE = f"Must be a whole number from 1 to {MAX_LIMIT}, in digits."


def id_field(max_length, **kwargs):
    """A string field of 1 to ``max_length`` characters under the id rule."""
    return fields.String(
        validate=[validate.Length(min=1, max=max_length), validate.Regexp(ID_PATTERN, error=ID_RULE)],
        **kwargs,
    )


def image_id(**kwargs):
    """A string field holding an image id: 1-255 characters of the id rule."""
    return id_field(255, **kwargs)


_ID = re.compile(ID_PATTERN)


def is_image_id(value):
    """Whether ``value`` (a str) meets the image id rule, as ``image_id()`` checks it."""
    return 1 <= len(value) <= 255 and _ID.match(value) is not None


def provider_id(**kwargs):
    """A string field holding a provider id: 1-64 characters of the id rule."""
    return id_field(64, **kwargs)


def remote_user(**kwargs):
    """A string field holding a login name: 1-64 characters."""
    return fields.String(
        validate=[
            validate.Length(min=1, max=64),
            validate.Regexp(REMOTE_USER_PATTERN, error=REMOTE_USER_RULE),
        ],
        **kwargs,
    )


def printable(value):
    """Reject control characters and lone surrogates (which no database can store)."""
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in value):
        raise ValidationError("Control characters and unpaired surrogates are not allowed.")


def image_name(**kwargs):
    """A string field holding an image's human label: 0-255 characters."""
    return fields.String(validate=[validate.Length(max=255), printable], **kwargs)


class ProviderCheck:
    """Mixin: ``provider`` must be on the deployment's allow-list, when it has one.

    The list (a frozenset of ids; empty means any well-formed id) is given as
    ``providers=`` when the schema is built, once per app.
    """

    def __init__(self, *, providers=frozenset(), **kwargs):
        super().__init__(**kwargs)
        self.providers = providers

    @validates("provider")
    def check_provider(self, value, data_key, **kwargs):
        if self.providers and value not in self.providers:
            allowed = ", ".join(sorted(self.providers))
            raise ValidationError(f"Unknown provider; allowed: {allowed}.")


class ImageSchema(ProviderCheck, Schema):
    """An image as created (``POST /v3/image``) and as shown in every response."""

    class Meta:
        unknown = RAISE
        ordered = True

    id = image_id(required=True)
    provider = provider_id(required=True)
    remote_user = remote_user(required=True)
    name = image_name(load_default="")


class ImageUpdateSchema(Schema):
    """The body of ``PUT /v3/image/<id>``.

    ``remote_user`` and/or ``name`` change; ``id`` and ``provider`` may be sent
    back as read, and the view checks them against the stored image (so the
    provider allow-list does not apply: an image made before the list
    changed can still be sent back as read).
    """

    class Meta:
        unknown = RAISE

    id = image_id()
    provider = provider_id()
    remote_user = remote_user()
    name = image_name()

    @validates_schema
    def check_change(self, data, **kwargs):
        if "remote_user" not in data and "name" not in data:
            message = ["Give remote_user and/or name to change."]
            raise ValidationError({"remote_user": message, "name": message})


class Digits(fields.Integer):
    """An integer written as plain ASCII digits, as a query string carries it.

    ``int()`` alone would also take ``" 5"``, ``"+5"`` and ``"1_000"``.
    """

    def _deserialize(self, value, attr, data, **kwargs):
        if not (isinstance(value, str) and value.isascii() and value.isdigit()):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class QuerySchema(Schema):
    """Base of query schemas: any parameter not declared is a 400 naming it."""

    error_messages = {"unknown": "Unknown query parameter."}

    class Meta:
        unknown = RAISE


class ImageQuerySchema(QuerySchema):
    """The query of ``GET /v3/images``: ``provider``, ``limit`` (1-1000), ``marker``."""

    provider = provider_id()
    limit = Digits(
        validate=validate.Range(min=1, max=MAX_LIMIT, error=LIMIT_RULE),
        error_messages={"invalid": LIMIT_RULE},
    )
    marker = image_id()


class NoQuerySchema(QuerySchema):
    """The query of every other route: nothing, so any parameter is a 400."""
