"""The OpenAPI document at ``GET /v3/openapi.json`` (README: The OpenAPI document): valid, and saying what the README says."""

import re

import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate
from support import JSON

from images_api import openapi
from images_api.state import api_state

pytestmark = pytest.mark.sqlite_only  # SQLite's own behaviour, or not about the database

IMAGE = "/v3/image/{image_id}"
ERRORS = {400, 401, 403, 406, 500, 503}

#: (method, path): (policy, statuses), as the README gives them.
OPERATIONS = {
    ("get", "/v3/images"): ("read_images", {200, 304} | ERRORS),
    ("post", "/v3/image"): ("create_image", {200, 409, 413, 415} | ERRORS),
    ("get", IMAGE): ("read_images", {200, 304, 404} | ERRORS),
    ("put", IMAGE): ("create_image", {200, 404, 412, 413, 415} | ERRORS),
    ("delete", IMAGE): ("delete_image", {200, 404, 412} | ERRORS),
}
SUCCESS_SCHEMAS = {
    ("post", "/v3/image"): "ImageCreated",
    ("get", IMAGE): "Image",
    ("put", IMAGE): "ImageUpdated",
    ("delete", IMAGE): "ImageDeleted",
}


@pytest.fixture
def document(client):
    response = client.get("/v3/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == JSON
    return response.get_json()


def resolve(document, item):
    """``item``, or what its ``$ref`` points at."""
    while "$ref" in item:
        node = document
        for part in item["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        item = node
    return item


def operation(document, method, path):
    return document["paths"][path][method]


def test_document_is_valid_openapi_3(document):
    validate(document)
    assert document["openapi"].startswith("3.")


def test_document_needs_no_credentials_and_is_built_once(app, client):
    first = client.get("/v3/openapi.json")
    assert first.status_code == 200
    assert client.get("/v3/openapi.json").get_json() == first.get_json()
    assert openapi.document(app) is openapi.document(app)


@pytest.mark.parametrize(
    "query, headers, status",
    [
        ("", {"Accept": JSON}, 200),
        ("", {"Accept": "*/*"}, 200),
        ("", {"Accept": ""}, 200),
        ("", {"Accept": "text/html"}, 406),
        ("?format=yaml", {}, 400),
        ("?=", {}, 400),
    ],
)
def test_document_route_follows_the_api_rules(client, query, headers, status):
    response = client.get(f"/v3/openapi.json{query}", headers=headers)
    assert response.status_code == status
    assert response.mimetype == JSON
    if status != 200:
        assert set(response.get_json()) <= {"message", "errors"}


def test_document_route_allows_only_get(client):
    response = client.post("/v3/openapi.json")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def test_document_covers_the_five_operations_and_no_other(app, document):
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert documented == set(OPERATIONS)
    served = {
        (method.lower(), rule.rule.replace("<", "{").replace(">", "}"))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/v3/") and rule.endpoint != "images_api.openapi_document"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert served == documented


@pytest.mark.parametrize("method, path", OPERATIONS)
def test_operation_names_its_policy(document, method, path):
    policy = OPERATIONS[method, path][0]
    item = operation(document, method, path)
    assert item["x-policy"] == policy
    assert f"`{policy}`" in item["description"]
    assert item["operationId"] and item["summary"]


@pytest.mark.parametrize("method, path", OPERATIONS)
def test_operation_gives_each_status_of_the_readme_with_its_body(document, method, path):
    responses = operation(document, method, path)["responses"]
    assert {int(status) for status in responses} == OPERATIONS[method, path][1]
    for status, response in responses.items():
        if status == "304":
            assert "content" not in response and set(response["headers"]) == {"ETag", "Cache-Control"}
            continue
        schema = resolve(document, response)["content"][JSON]["schema"]
        if status != "200":
            assert schema == {"$ref": "#/components/schemas/Error"}


def test_error_schema_is_message_and_field_errors(document):
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["message"]
    assert error["additionalProperties"] is False
    assert error["properties"]["errors"]["additionalProperties"] == {"type": "array", "items": {"type": "string"}}


@pytest.mark.parametrize("method, path", SUCCESS_SCHEMAS)
def test_success_bodies(document, method, path):
    schema = operation(document, method, path)["responses"]["200"]["content"][JSON]["schema"]
    assert schema == {"$ref": f"#/components/schemas/{SUCCESS_SCHEMAS[method, path]}"}


def test_list_is_an_array_of_images(document):
    schema = operation(document, "get", "/v3/images")["responses"]["200"]["content"][JSON]["schema"]
    assert schema == {"type": "array", "items": {"$ref": "#/components/schemas/Image"}}


def test_response_schemas_show_exactly_the_four_fields(document):
    schemas = document["components"]["schemas"]
    image = schemas["Image"]
    assert set(image["properties"]) == set(image["required"]) == {"id", "provider", "remote_user", "name"}
    assert image["additionalProperties"] is False
    assert schemas["ImageUpdated"]["properties"]["image"] == {"$ref": "#/components/schemas/Image"}
    for name, message in [("ImageCreated", "Created"), ("ImageUpdated", "Updated"), ("ImageDeleted", "Deleted")]:
        assert schemas[name]["properties"]["message"]["enum"] == [message]
        assert set(schemas[name]["required"]) == set(schemas[name]["properties"])


def test_headers(document):
    created = operation(document, "post", "/v3/image")["responses"]["200"]
    assert created["headers"]["Location"]["required"] is True
    listed = operation(document, "get", "/v3/images")["responses"]["200"]
    assert listed["headers"]["Link"]["required"] is False
    responses = document["components"]["responses"]
    assert responses["Unauthorized"]["headers"]["WWW-Authenticate"]["required"] is True
    assert responses["ServiceUnavailable"]["headers"]["Retry-After"]["required"] is True


def test_documented_headers_are_the_ones_sent(client, admin_headers, document):
    challenge = document["components"]["responses"]["Unauthorized"]["headers"]["WWW-Authenticate"]
    assert challenge["schema"]["enum"] == [client.get("/v3/images").headers["WWW-Authenticate"]]
    link = operation(document, "get", "/v3/images")["responses"]["200"]["headers"]["Link"]["schema"]["pattern"]
    for image_id in ("a", "b"):
        body = {"id": image_id, "provider": "ec2", "remote_user": "ubuntu"}
        assert client.post("/v3/image", json=body, headers=admin_headers).status_code == 200
    assert re.search(link, client.get("/v3/images?limit=1", headers=admin_headers).headers["Link"])


def test_list_parameters(document):
    parameters = {item["name"]: item for item in operation(document, "get", "/v3/images")["parameters"]}
    assert set(parameters) == {"provider", "limit", "marker", "If-None-Match"}
    assert all(item["in"] == "query" for name, item in parameters.items() if name != "If-None-Match")
    assert all(not item["required"] and item["description"] for item in parameters.values())
    assert parameters["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000}
    assert parameters["provider"]["schema"]["maxLength"] == 64
    assert parameters["marker"]["schema"]["maxLength"] == 255


@pytest.mark.parametrize("method, condition", [("get", "If-None-Match"), ("put", "If-Match"), ("delete", "If-Match")])
def test_image_id_path_parameter_and_the_condition(document, method, condition):
    parameter, header = operation(document, method, IMAGE)["parameters"]
    assert parameter["in"] == "path" and parameter["name"] == "image_id" and parameter["required"] is True
    assert parameter["schema"]["pattern"] == document["components"]["schemas"]["Image"]["properties"]["id"]["pattern"]
    assert header["in"] == "header" and header["name"] == condition and header["required"] is False


def test_create_takes_no_parameters(document):
    assert "parameters" not in operation(document, "post", "/v3/image")


def test_request_bodies(document):
    schemas = document["components"]["schemas"]
    for (method, path), name in [(("post", "/v3/image"), "NewImage"), (("put", IMAGE), "ImageChange")]:
        body = operation(document, method, path)["requestBody"]
        assert body["required"] is True
        assert set(body["content"]) == {JSON}
        assert body["content"][JSON]["schema"] == {"$ref": f"#/components/schemas/{name}"}
        assert schemas[name]["additionalProperties"] is False
    new = schemas["NewImage"]
    assert new["required"] == ["id", "provider", "remote_user"]
    assert new["properties"]["name"]["default"] == ""
    change = schemas["ImageChange"]
    assert "required" not in change
    assert change["not"] == {"not": {"anyOf": [{"required": ["remote_user"]}, {"required": ["name"]}]}}
    assert change["properties"]["id"]["readOnly"] is True
    assert change["properties"]["provider"]["readOnly"] is True


@pytest.mark.parametrize(
    "body, valid",
    [
        ({}, False),
        ({"id": "ami-1", "provider": "ec2"}, False),
        ({"name": ""}, True),
        ({"remote_user": "ubuntu"}, True),
        ({"remote_user": "ubuntu", "name": "x", "id": "ami-1"}, True),
        ({"remote_user": "ubuntu", "colour": "red"}, False),
    ],
)
def test_image_change_needs_remote_user_or_name(document, body, valid):
    """The one rule across fields (README: The API, on PUT) is in the document too."""
    assert OAS30Validator(document["components"]["schemas"]["ImageChange"]).is_valid(body) is valid


def test_request_body_examples_are_accepted(client, admin_headers, document):
    create = operation(document, "post", "/v3/image")["requestBody"]["content"][JSON]["example"]
    change = operation(document, "put", IMAGE)["requestBody"]["content"][JSON]["example"]
    assert client.post("/v3/image", json=create, headers=admin_headers).status_code == 200
    assert client.put(f"/v3/image/{create['id']}", json=change, headers=admin_headers).status_code == 200


def test_security_schemes_bearer_and_basic(document):
    schemes = document["components"]["securitySchemes"]
    assert {name: (item["type"], item["scheme"]) for name, item in schemes.items()} == {
        "bearerAuth": ("http", "bearer"),
        "basicAuth": ("http", "basic"),
    }
    for method, path in OPERATIONS:
        assert operation(document, method, path)["security"] == [{"bearerAuth": []}, {"basicAuth": []}]


def test_links_lead_from_an_image_to_its_operations(document):
    operation_ids = {item["operationId"] for path in document["paths"].values() for item in path.values()}
    links = operation(document, "post", "/v3/image")["responses"]["200"]["links"]
    assert {link["operationId"] for link in links.values()} == {"show_image", "update_image", "delete_image"}
    for method, path in OPERATIONS:
        for link in operation(document, method, path)["responses"]["200"].get("links", {}).values():
            assert link["operationId"] in operation_ids
            assert set(link["parameters"]) == {"image_id"}


def ecma_match(schema, value):
    """Whether ``value`` meets a string schema, reading ``$`` as ECMA-262 does (the very end)."""
    pattern = schema.get("pattern", "").replace("$", r"\Z")
    return (
        schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value))
        and re.search(pattern, value) is not None
    )


@pytest.mark.parametrize(
    "field, value",
    [
        ("id", "ami-0abc1234"),
        ("id", "Canonical:UbuntuServer:22.04:latest"),
        ("id", "a~b@c+d_e.f"),
        ("id", "..."),
        ("id", "."),
        ("id", ".."),
        ("id", "ami 1"),
        ("id", "ami-1\n"),
        ("id", "ämi"),
        ("id", ""),
        ("id", "a" * 255),
        ("id", "a" * 256),
        ("provider", "a" * 64),
        ("provider", "a" * 65),
        ("remote_user", "ubuntu"),
        ("remote_user", "_svc-1.x"),
        ("remote_user", "1root"),
        ("remote_user", "ec2-user\n"),
        ("name", ""),
        ("name", "Ubuntu 24.04 — LTS ✓"),
        ("name", "tab\there"),
        ("name", "line\n"),
        ("name", "c1\x85"),
        ("name", "del\x7f"),
        ("name", "n" * 256),
    ],
)
def test_field_rules_agree_with_the_schemas(app, document, field, value):
    """A value meets the document's rule exactly when the service's schema takes it."""
    schema = api_state(app).image_schema
    body = {"id": "ami-1", "provider": "ec2", "remote_user": "ubuntu", field: value}
    accepted = not schema.validate(body)
    assert ecma_match(document["components"]["schemas"]["NewImage"]["properties"][field], value) is accepted


@pytest.fixture
def allow_list_document(config):
    from images_api import create_app

    app = create_app({**config, "IMAGES_API_PROVIDERS": "openstack,ec2"})
    return app.test_client().get("/v3/openapi.json").get_json()


def test_provider_allow_list_is_an_enum_of_request_bodies(allow_list_document):
    validate(allow_list_document)
    schemas = allow_list_document["components"]["schemas"]
    assert schemas["NewImage"]["properties"]["provider"]["enum"] == ["ec2", "openstack"]
    # An update only sends back the stored provider, which may predate the list.
    assert "enum" not in schemas["ImageChange"]["properties"]["provider"]
    # An image stored before the list changed still shows; a listing filter is no request to store.
    assert "enum" not in schemas["Image"]["properties"]["provider"]
    parameters = operation(allow_list_document, "get", "/v3/images")["parameters"]
    assert all("enum" not in item["schema"] for item in parameters)


def test_document_under_a_mount_prefix_names_its_server(client):
    assert "servers" not in client.get("/v3/openapi.json").get_json()
    mounted = client.get("/v3/openapi.json", base_url="http://localhost/api")
    assert mounted.get_json()["servers"] == [{"url": "/api"}]
