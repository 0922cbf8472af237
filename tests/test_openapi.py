"""The OpenAPI document and docs pages a client of the tutorial's app relies on."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from heroapi.main import create_app
from tests.conftest import make_settings, running_app

# FastAPI's default operation ids for the tutorial's handlers (clients are generated from them).
TUTORIAL_OPERATIONS = {
    ("/heroes/", "post"): "create_hero_heroes__post",
    ("/heroes/", "get"): "read_heroes_heroes__get",
    ("/heroes/{hero_id}", "get"): "read_hero_heroes__hero_id__get",
    ("/heroes/{hero_id}", "patch"): "update_hero_heroes__hero_id__patch",
    ("/heroes/{hero_id}", "delete"): "delete_hero_heroes__hero_id__delete",
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    database = tmp_path_factory.mktemp("openapi") / "openapi.db"
    with running_app(make_settings(f"sqlite:///{database}", migrate_on_start=True)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def openapi(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def test_openapi_is_3_1(openapi: dict[str, Any]) -> None:
    assert openapi["openapi"].startswith("3.1.")


def test_operation_ids_are_the_tutorials(openapi: dict[str, Any]) -> None:
    found = {
        (path, method): operation["operationId"]
        for path, operations in openapi["paths"].items()
        for method, operation in operations.items()
        if path.startswith("/heroes")
    }
    assert found == TUTORIAL_OPERATIONS


def test_schema_names_and_fields_are_the_tutorials(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    assert set(schemas["HeroCreate"]["properties"]) == {"name", "age", "secret_name"}
    assert set(schemas["HeroCreate"]["required"]) == {"name", "secret_name"}
    assert set(schemas["HeroPublic"]["properties"]) == {"name", "age", "id"}
    assert set(schemas["HeroPublic"]["required"]) == {"name", "id"}
    assert set(schemas["HeroUpdate"]["properties"]) == {"name", "age", "secret_name"}
    assert "required" not in schemas["HeroUpdate"]
    create = openapi["paths"]["/heroes/"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HeroCreate"
    }
    assert create["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HeroPublic"
    }


def test_string_columns_have_a_maximum_length(openapi: dict[str, Any]) -> None:
    create = openapi["components"]["schemas"]["HeroCreate"]["properties"]
    assert create["name"]["maxLength"] == 255
    assert create["secret_name"]["maxLength"] == 255


def test_limit_is_documented_as_at_most_100(openapi: dict[str, Any]) -> None:
    parameters = {p["name"]: p for p in openapi["paths"]["/heroes/"]["get"]["parameters"]}
    assert parameters["limit"]["schema"]["maximum"] == 100
    assert parameters["limit"]["schema"]["default"] == 100
    assert parameters["offset"]["schema"]["minimum"] == 0


def test_404_is_documented(openapi: dict[str, Any]) -> None:
    for method in ("get", "patch", "delete"):
        assert "404" in openapi["paths"]["/heroes/{hero_id}"][method]["responses"]


@pytest.mark.parametrize("path", ["/heroes/{hero_id}", "/items/{item_id}"])
def test_a_delete_documents_its_answer_as_ok_true(openapi: dict[str, Any], path: str) -> None:
    answer = openapi["paths"][path]["delete"]["responses"]["200"]
    reference = answer["content"]["application/json"]["schema"]["$ref"]
    schema = openapi["components"]["schemas"][reference.rsplit("/", 1)[1]]
    assert schema["properties"] == {"ok": {"type": "boolean", "const": True, "title": "Ok"}}
    assert schema["required"] == ["ok"]
    assert schema.get("additionalProperties") is not True


def test_secret_name_is_not_in_public_schema(openapi: dict[str, Any]) -> None:
    assert "secret_name" not in openapi["components"]["schemas"]["HeroPublic"]["properties"]


@pytest.mark.parametrize(("path", "marker"), [("/docs", "swagger"), ("/redoc", "redoc")])
def test_docs_pages_are_served(client: TestClient, path: str, marker: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert marker in response.text.lower()
    assert "/openapi.json" in response.text


# Swagger UI groups operations by their first tag; untagged ones land under "default".
TAGS_BY_PATH = {"heroes": "heroes", "users": "users", "items": "items", "login": "login"}
TAGS_BY_PATH |= {"logout": "login", "health": "health"}


def test_every_operation_is_tagged_by_its_resource(openapi: dict[str, Any]) -> None:
    found = {
        (path, method): operation.get("tags")
        for path, operations in openapi["paths"].items()
        for method, operation in operations.items()
    }
    expected = {(path, method): [TAGS_BY_PATH[path.split("/")[1]]] for path, method in found}
    assert found == expected


GOLDEN = Path(__file__).parent / "openapi"


@pytest.mark.parametrize("auth_mode", ["open", "required"])
def test_the_document_is_the_one_clients_were_generated_from(
    tmp_path: Path, auth_mode: str
) -> None:
    """`/openapi.json`, key order included, is `tests/openapi/<mode>.json`: a change of the code
    that moves a schema, a header or an operation id shows here. A deliberate change of the
    document replaces the file with the one this test writes beside its database (and the README
    says why)."""
    settings = make_settings(f"sqlite:///{tmp_path / 'doc.db'}", auth_mode=auth_mode)
    with TestClient(create_app(settings)) as client:
        served = client.get("/openapi.json")
    assert served.status_code == 200
    text = json.dumps(served.json(), indent=1) + "\n"
    golden = GOLDEN / f"{auth_mode}.json"
    if text != golden.read_text():
        served_copy = tmp_path / f"{auth_mode}.json"
        served_copy.write_text(text)
        raise AssertionError(f"the OpenAPI document differs: diff {golden} {served_copy}")
