"""schemathesis against the live service, from its own OpenAPI document (README: The OpenAPI document).

A real waitress server on a free port serves an app on a temp-file database;
schemathesis's command line runs every check and every phase (examples,
coverage, fuzzing, stateful) against it, authenticated, with a fixed seed and
a bounded number of examples: it must find nothing. The tests after it keep
what it found fixed.
"""

import json
import re
import sys
import urllib.error
import urllib.request

import pytest
from support import WWW_AUTHENTICATE, run_process

SEED = 20240604
#: Test cases per operation and phase: about 35 s for the whole run here.
MAX_EXAMPLES = 300


@pytest.fixture
def live_server(serve):
    """The URL of the service (``TESTING`` off, as deployed) served by waitress on a free port."""
    return f"http://127.0.0.1:{serve(threads=4).port}"


def test_schemathesis_finds_nothing(live_server, admin_token, tmp_path):
    """Every check, every phase, as the admin: no failure and no warning."""
    # A warning fails the run too: "every operation answered 401" means the
    # credentials are wrong, and every check would pass without testing a thing.
    config = tmp_path / "schemathesis.toml"
    # A schema-valid If-Match that names no current ETag is rightly a 412
    # (README: Conditional requests); the others are schemathesis's defaults.
    config.write_text(
        "[warnings]\nfail-on = true\n"
        '[checks.positive_data_acceptance]\nexpected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "412", "429", "5xx"]\n'
    )
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config),
        "run", f"{live_server}/v3/openapi.json",
        "--checks", "all",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--header", f"Authorization: Bearer {admin_token}",
        "--seed", str(SEED),
        "--max-examples", str(MAX_EXAMPLES),
        "--workers", "1",  # one worker, so one seed gives one sequence of requests
        "--generation-database", "none",  # no examples carried over from an earlier run
        "--suppress-health-check", "too_slow",  # a timing, not a property of the API
        "--request-timeout", "30",
        "--no-color",
    ]  # fmt: skip
    result = run_process(command, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No issues found" in result.stdout, result.stdout
    # ... and it did test: all five operations, and sequences of them through the links.
    assert re.search(r"Tested: +5\b", result.stdout), result.stdout
    assert int(re.search(r"Scenarios: +(\d+)", result.stdout)[1]) > 0, result.stdout


def test_live_server_is_the_service(live_server):
    """The server the run targets answers as the API does, errors included."""
    with urllib.request.urlopen(f"{live_server}/v3/openapi.json") as response:
        assert json.load(response)["openapi"].startswith("3.")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{live_server}/v3/images")
    with caught.value as error:
        assert error.code == 401
        assert error.headers["WWW-Authenticate"] == WWW_AUTHENTICATE
        assert list(json.load(error)) == ["message"]


# What schemathesis found in the service, kept fixed.


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
