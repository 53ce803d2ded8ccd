"""The OpenAPI 3 document of the ``/v3`` API, served at ``GET /v3/openapi.json``.

apispec's marshmallow plugin writes it from the schemas that load requests,
so the two cannot drift. Each operation comes from what its view carries:
its policy (``policy_required``), query and body schemas (``parse``) and what
it answers (``responses.responses``); the field rules from ``schemas.py``.
This module adds what neither says: the fields' JSON Schema patterns and
descriptions, the parameters' descriptions, the request examples and the
security schemes (README: Authentication). ``document`` builds it once per app.
"""

import importlib.metadata

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import current_app, jsonify, request

from .parsing import JSON
from .responses import CONDITIONS, ERRORS, ErrorSchema, ImageCreatedSchema, ImageDeletedSchema, ImageUpdatedSchema, ShownImageSchema
from .schemas import ImageSchema, ImageUpdateSchema, ProviderCheck, printable
from .state import api_state

OPENAPI_VERSION = "3.0.3"
EXTENSION = "images_api.openapi"
SECURITY = [{"bearerAuth": []}, {"basicAuth": []}]

#: ``printable`` as a JSON Schema pattern: no C0 or C1 control characters.
#: (Lone surrogates, which it also refuses, cannot be written in a pattern
#: every validator reads; no valid Unicode text holds one.)
PRINTABLE_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]*$"

FIELD_DESCRIPTIONS = {
    "id": "The provider's image id (`ami-0abc…`, an OpenStack UUID, `Canonical:UbuntuServer:22.04:latest`). Never changes.",
    "provider": "The provider id (`ec2`, `openstack`, …). Never changes.",
    "remote_user": "The login (SSH) user on machines booted from the image.",
    "name": "A label for people: any Unicode text without control characters.",
}
PARAMETER_DESCRIPTIONS = {
    "provider": "Only the images of this provider.",
    "limit": "At most this many images; when more follow, the `Link` header gives the next page.",
    "marker": "Start after the image with this id (the last id of the previous page).",
}


def ecma_pattern(pattern):
    r"""A Python pattern applied with ``re.match`` as a JSON Schema (ECMA-262) one.

    JSON Schema patterns are not anchored, and ECMA-262 has no ``\Z``; its
    ``$`` (without the multiline flag) matches only at the very end, which is
    what the schemas' ``\Z`` means.
    """
    pattern = pattern.replace(r"\Z", "$")
    return pattern if pattern.startswith("^") else "^" + pattern


def field_rules(converter, field, ret, **kwargs):
    """Attribute function: what the plugin cannot read from a field's validators."""
    extra = {}
    parent = field.parent
    if "pattern" in ret:
        extra["pattern"] = ecma_pattern(ret["pattern"])
    if printable in field.validators:
        extra["pattern"] = PRINTABLE_PATTERN
    if isinstance(parent, ImageSchema | ImageUpdateSchema) and field.name in FIELD_DESCRIPTIONS:
        extra["description"] = FIELD_DESCRIPTIONS[field.name]
    if field.name == "provider" and isinstance(parent, ProviderCheck) and parent.providers:
        extra["enum"] = sorted(parent.providers)
    if isinstance(parent, ImageUpdateSchema) and field.name in ("id", "provider"):
        # The view compares them with the stored image (README: The API, on PUT).
        extra["readOnly"] = True
        extra["description"] = f"{FIELD_DESCRIPTIONS[field.name]} May be sent back as read; any other value is a 400."
    return extra


def examples(providers):
    provider = min(providers) if providers else "ec2"
    return {
        ImageSchema: {"id": "ami-0abc1234", "provider": provider, "remote_user": "ubuntu", "name": "Ubuntu 24.04"},
        ImageUpdateSchema: {"remote_user": "admin"},
    }


def operation(plugin, rule, view, state):
    """The OpenAPI operation of ``view``, served at ``rule``."""
    name = view.__name__
    summary, _, details = (view.__doc__ or name).replace("``", "`").strip().partition("\n")
    converter = plugin.converter
    id_schema = converter.field2property(state.image_schema.fields["id"])
    del id_schema["description"]  # the parameter's own says it
    parameters = [
        {
            "in": "path",
            "name": argument,
            "required": True,
            "description": "The image's id.",
            "schema": id_schema,
        }
        for argument in sorted(rule.arguments)
    ]
    for parameter in converter.schema2parameters(state.schema(view.query_schema), location="query"):
        parameter["description"] = PARAMETER_DESCRIPTIONS.get(parameter["name"], "")
        parameters.append(parameter)
    answers = view.responses
    if answers.condition:
        description = CONDITIONS[answers.condition][0]
        parameters.append({"in": "header", "name": answers.condition, "required": False, "description": description, "schema": {"type": "string"}})
    result = {
        "operationId": name,
        "summary": summary.strip(),
        "description": f"{details.strip()}\n\nRequires the `{view.policy}` policy.".strip(),
        "x-policy": view.policy,
        "tags": ["images"],
        "security": SECURITY,
        "responses": answers.document(reads_body=view.body_schema is not None),
    }
    if parameters:
        result["parameters"] = parameters
    if view.body_schema is not None:
        result["requestBody"] = {
            "required": True,
            "content": {
                JSON: {
                    "schema": state.schema(view.body_schema),
                    "example": examples(state.settings.providers)[view.body_schema],
                }
            },
        }
    return result


def build(app):
    """The OpenAPI document (a dict) of the API that ``app`` serves."""
    state = api_state(app)
    # Every schema is registered by name below; the resolver names no other.
    plugin = MarshmallowPlugin(schema_name_resolver=lambda schema: None)
    spec = APISpec(
        title="images-api",
        version=package_version(),
        openapi_version=OPENAPI_VERSION,
        plugins=[plugin],
        info={
            "description": (
                "A catalogue of cloud machine images for deployment tooling. Every operation needs "
                "a policy (`x-policy`) and credentials: a Bearer token, or Basic with the user's "
                "name and token. Every error is `{\"message\": ...}`, with `errors` naming each "
                "broken field; checks run in the order 404/405, 401, 403, 406, 415, 413, 400, "
                "404/409, 412. A query parameter an operation does not list is a 400."
            ),
        },
        tags=[{"name": "images", "description": "Image records."}],
    )
    plugin.converter.add_attribute_function(field_rules)
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "description": "An API token."})
    spec.components.security_scheme(
        "basicAuth", {"type": "http", "scheme": "basic", "description": "The user's name and API token."}
    )
    spec.components.schema("Image", schema=ShownImageSchema())
    spec.components.schema("NewImage", schema=state.image_schema)
    spec.components.schema("ImageChange", schema=state.schema(ImageUpdateSchema))
    spec.components.schema("ImageCreated", schema=ImageCreatedSchema())
    spec.components.schema("ImageUpdated", schema=ImageUpdatedSchema())
    spec.components.schema("ImageDeleted", schema=ImageDeletedSchema())
    spec.components.schema("Error", schema=ErrorSchema())
    for name, response in ERRORS.values():
        spec.components.response(name, response)

    paths = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if not (rule.endpoint.startswith("images_api.") and hasattr(view, "policy")):
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = operation(plugin, rule, view, state)
    for path, operations in sorted(paths.items()):
        spec.path(path=path, operations=operations)

    document = spec.to_dict()
    # "At least one of remote_user and name" (ImageUpdateSchema.check_change) is
    # a rule across fields, which the plugin does not read. Said as not-not-anyOf:
    # a bare anyOf makes client generators take the body for a union and drop its model.
    change = document["components"]["schemas"]["ImageChange"]
    change["description"] = "Give `remote_user` and/or `name`; `id` and `provider` only as read."
    change["not"] = {"not": {"anyOf": [{"required": ["remote_user"]}, {"required": ["name"]}]}}
    return document


def package_version():
    try:
        return importlib.metadata.version("images-api")
    except importlib.metadata.PackageNotFoundError:
        return "3"


def document(app):
    """The app's OpenAPI document, built on first use and kept."""
    if EXTENSION not in app.extensions:
        app.extensions[EXTENSION] = build(app)
    return app.extensions[EXTENSION]


def response():
    """The document as the response to the request in context.

    Its paths start at the app's root; when the app is mounted under a
    prefix, ``servers`` says so.
    """
    body = document(current_app)
    if request.script_root:
        body = {**body, "servers": [{"url": request.script_root}]}
    return jsonify(body)
