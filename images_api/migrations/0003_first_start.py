"""The database records that its first start is done, so that it happens once in its life.

A database that has users or images has had its first start.
"""

import datetime

from peewee import DateTimeField, IntegerField, Model


def up(migrator, db):
    class FirstStart(Model):
        id = IntegerField(primary_key=True)
        done = DateTimeField(default=datetime.datetime.now)

        class Meta:
            database = db
            table_name = "first_start"

    db.create_tables([FirstStart])
    used = db.execute_sql("SELECT 1 FROM users UNION ALL SELECT 1 FROM images").fetchone()
    if used is not None:
        FirstStart.create(id=1)
