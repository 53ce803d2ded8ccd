"""The API's state in each app, and one way to reach it (flask-smorest's ``current_api``)."""

from dataclasses import dataclass

from flask import current_app
from werkzeug.local import LocalProxy

from .schemas import ImageQuerySchema, ImageSchema, ImageUpdateSchema, NoQuerySchema
from .settings import Settings

EXTENSION = "images_api"  # the key in ``app.extensions``

#: Schemas that need no setting of an app: built once, here.
SHARED_SCHEMAS = {schema: schema() for schema in (ImageUpdateSchema, ImageQuerySchema, NoQuerySchema)}


@dataclass
class State:
    """What one app's API needs at request time; ``init_app`` builds it."""

    settings: Settings
    database: object
    image_schema: ImageSchema  # the one schema an app's setting shapes: the provider allow-list
    standalone: bool

    def schema(self, schema_class):
        """The instance of ``schema_class`` this app loads and dumps with."""
        return self.image_schema if schema_class is ImageSchema else SHARED_SCHEMAS[schema_class]


def api_state(app):
    """The ``State`` of ``app`` (a Flask app the API was added to)."""
    return app.extensions[EXTENSION]


#: The ``State`` of the app in context.
current_api = LocalProxy(lambda: api_state(current_app))
