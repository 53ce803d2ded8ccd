"""The schema images-api 3.0.0 created: images and users (a database it made already has them)."""

from peewee import CharField, Model, TextField


def up(migrator, db):
    class Image(Model):
        id = CharField(max_length=255, primary_key=True)
        provider = CharField(max_length=64, index=True)
        remote_user = CharField(max_length=64)
        name = CharField(max_length=255, default="")

        class Meta:
            database = db
            table_name = "images"

    class User(Model):
        name = CharField(max_length=64, unique=True)
        policies = TextField(default="")
        token_hash = CharField(max_length=64, unique=True)

        class Meta:
            database = db
            table_name = "users"

    db.create_tables([Image, User], safe=True)
