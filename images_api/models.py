"""Peewee models: images and users (README: The API, Authentication)."""

import peewee

from .db import database


class ExactText(peewee.CharField):
    """A string compared, kept unique and sorted by code point on every database.

    Its column type comes from the database's field types under ``EXACT``
    (``db.EXACT_TEXT``): a binary collation where the default would fold
    case, accents or trailing spaces (README: The API).
    """

    field_type = "EXACT"

    def ddl_datatype(self, ctx):
        column = ctx.state.field_types.get(self.field_type, "VARCHAR({length})")
        return peewee.SQL(column.format(length=self.max_length))


class BaseModel(peewee.Model):
    class Meta:
        database = database

    @classmethod
    def from_row(cls, row):
        """An instance from ``row``: a tuple of column values in field order, as ``cls.select()`` reads them."""
        return cls(**{field.name: field.python_value(value) for field, value in zip(cls._meta.sorted_fields, row)})


class Image(BaseModel):
    """A cloud machine image: where it lives and whom to log in as."""

    id = ExactText(max_length=255, primary_key=True)
    provider = ExactText(max_length=64, index=True)
    remote_user = ExactText(max_length=64)
    name = ExactText(max_length=255, default="")

    class Meta:
        table_name = "images"


class User(BaseModel):
    """An API user: a name, its policies and the SHA-256 of its one token."""

    name = ExactText(max_length=64, unique=True)
    policies = peewee.TextField(default="")  # space-separated policy names
    token_hash = ExactText(max_length=64, unique=True)

    class Meta:
        table_name = "users"

    @property
    def policy_set(self):
        """The user's policies as a frozenset of names."""
        return frozenset(self.policies.split())


def create_tables():
    """Create the missing tables on the database of the app in context."""
    database.create_tables([Image, User], safe=True)
