"""Peewee models: images, users and the first start (README: The API, Authentication).

The tables are made and changed by the migrations (``images_api/migrations``),
which declare every text column to compare by code point on every database.
"""

import datetime

import peewee

from .db import database


class BaseModel(peewee.Model):
    class Meta:
        database = database

    @classmethod
    def from_row(cls, row):
        """An instance from ``row``: a tuple of column values in field order, as ``cls.select()`` reads them."""
        return cls(**{field.name: field.python_value(value) for field, value in zip(cls._meta.sorted_fields, row)})


class Image(BaseModel):
    """A cloud machine image: where it lives and whom to log in as."""

    id = peewee.CharField(max_length=255, primary_key=True)
    provider = peewee.CharField(max_length=64, index=True)
    remote_user = peewee.CharField(max_length=64)
    name = peewee.CharField(max_length=255, default="")

    class Meta:
        table_name = "images"


class User(BaseModel):
    """An API user: a name, its policies and the SHA-256 of its one token."""

    name = peewee.CharField(max_length=64, unique=True)
    policies = peewee.TextField(default="")  # space-separated policy names
    token_hash = peewee.CharField(max_length=64, unique=True)

    class Meta:
        table_name = "users"

    @property
    def policy_set(self):
        """The user's policies as a frozenset of names."""
        return frozenset(self.policies.split())


class FirstStart(BaseModel):
    """One row once the database's first start is done (README: Users and tokens)."""

    id = peewee.IntegerField(primary_key=True)
    done = peewee.DateTimeField(default=datetime.datetime.now)

    class Meta:
        table_name = "first_start"
