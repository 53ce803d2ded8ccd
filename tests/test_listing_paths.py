"""A listing is, byte for byte, the shown images joined (README: The API, ``GET /v3/images``).

The database writes the listing's JSON (images_api/listing.py) while
``GET /v3/image/<id>`` is Flask's: on every listing path and every database
the two must say the same, whatever the names hold.
"""

import pytest

IMAGES = [
    {"id": "ami-2", "provider": "ec2", "remote_user": "ubuntu", "name": "Ubuntu 24.04"},
    {"id": "ami-10", "provider": "ec2", "remote_user": "ec2-user"},  # name defaults to ""
    {"id": "Canonical:UbuntuServer:22.04:latest", "provider": "azure", "remote_user": "azureuser", "name": 'Ünïcode "☃" \\ 🚀'},
    {"id": "os-1", "provider": "openstack", "remote_user": "_cloud.user-1", "name": "</script>"},
    {"id": "os-2", "provider": "openstack", "remote_user": "root", "name": "a/b\u2028c\u00a0d\u200be \U0001d11e ﬃ 'x' <&>"},
]
CODE_POINT_ORDER = ["Canonical:UbuntuServer:22.04:latest", "ami-10", "ami-2", "os-1", "os-2"]


@pytest.fixture
def created(client, admin_headers):
    for image in IMAGES:
        resp = client.post("/v3/image", json=image, headers=admin_headers)
        assert resp.status_code == 200, resp.get_json()


def shown(client, headers, image_id):
    resp = client.get(f"/v3/image/{image_id}", headers=headers)
    assert resp.status_code == 200
    return resp.data.rstrip(b"\n")


@pytest.mark.parametrize(
    "query, ids",
    [
        ("", CODE_POINT_ORDER),
        ("?provider=ec2", ["ami-10", "ami-2"]),
        ("?limit=2", CODE_POINT_ORDER[:2]),
        ("?marker=ami-10&limit=1", ["ami-2"]),
        ("?marker=ami-2", ["os-1", "os-2"]),
        ("?provider=gce", []),
    ],
)
def test_listing_is_the_shown_images_joined(client, admin_headers, created, query, ids):
    resp = client.get(f"/v3/images{query}", headers=admin_headers)
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    assert resp.data == b"[" + b",".join(shown(client, admin_headers, image_id) for image_id in ids) + b"]\n"


def test_link_marker_is_the_last_id_of_the_page(client, admin_headers, created):
    resp = client.get("/v3/images?limit=3", headers=admin_headers)
    assert resp.headers["Link"] == '<http://localhost/v3/images?limit=3&marker=ami-2>; rel="next"'
