"""What schemathesis found in the service (issue 4), kept fixed."""

import pytest


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("get", "/v3/images?=null", None),
        ("get", "/v3/images?limit=3&=", None),
        ("get", "/v3/image/ami-1?=x", None),
        ("post", "/v3/image", {"": "x", "id": "ami-1", "provider": "ec2", "remote_user": "ubuntu"}),
        ("put", "/v3/image/ami-1", {"": None}),
    ],
)
def test_a_field_with_an_empty_name_is_a_400_naming_it(client, admin_headers, method, path, body):
    """Found by schemathesis: an empty query parameter or body key name was a 500."""
    client.post("/v3/image", json={"id": "ami-1", "provider": "ec2", "remote_user": "ubuntu"}, headers=admin_headers)
    response = client.open(path, method=method, json=body, headers=admin_headers)
    assert response.status_code == 400
    assert "" in response.get_json()["errors"]
    assert response.get_json()["message"] == 'Invalid input: "".'
