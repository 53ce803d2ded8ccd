"""Every request to the API gets its access line, routing failures too (README: Health and logs)."""

import logging

import pytest

pytestmark = pytest.mark.sqlite_only  # not about the database


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("GET", "/v3/imagez", 404),
        ("PATCH", "/v3/image/x", 405),
        ("DELETE", "/v3/images", 405),
        ("GET", "/v3//images", 404),  # answered as 404, never a redirect
        ("GET", "/v3", 404),
    ],
)
def test_a_routing_failure_on_an_api_path_gets_its_access_line(client, admin_headers, caplog, method, path, status):
    caplog.set_level(logging.INFO, logger="images_api.access")
    assert client.open(path, method=method, headers=admin_headers).status_code == status
    (line,) = [record.getMessage() for record in caplog.records if record.name == "images_api.access"]
    method_logged, path_logged, status_logged, duration, user = line.split()
    assert (method_logged, path_logged, status_logged, user) == (method, path, str(status), "user=-")
    assert duration.endswith("ms") and float(duration[:-2]) >= 0
