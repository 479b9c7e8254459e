from tests.conftest import assert_problem


def test_register_and_wallet(client):
    r = client.post("/api/v1/auth/register", json={"email": "Dana@Example.com ", "password": "dana passphrase 9",
                                                   "name": "Dana"})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["member"]["email"] == "dana@example.com"
    h = {"Authorization": f"Bearer {body['access_token']}"}
    w = client.get("/api/v1/me/wallet", headers=h)
    assert w.status_code == 200, w.get_json()
    assert w.get_json()["points"]["balance"] == 0
    assert len(w.get_json()["card"]["number"]) == 16


def test_unknown_field(client):
    r = client.post("/api/v1/auth/register", json={"email": "a@b.co", "password": "dana passphrase 9", "name": "x", "evil": 1})
    body = assert_problem(r, 422, "validation_error")
    assert "evil" in body["errors"]
