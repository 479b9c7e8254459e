"""The ``loyalty`` command: staff accounts and the demo club."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from api.extensions import db
from wallet import members
from wallet.db import Base


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def counts(app) -> dict[str, int]:
    with app.app_context():
        out = {name: db.session.scalar(select(func.count()).select_from(table))
               for name, table in Base.metadata.tables.items()}
        db.session.remove()
        return out


def sign_in(client, email, password):
    return client.post("/api/v1/auth/token", json={"email": email, "password": password})


def test_staff_create_cashier(runner, client, factory):
    store = factory.store(code="TLV-01")
    result = runner.invoke(args=["staff", "create", "--email", " Cashier@Example.com", "--password", "till password",
                                 "--role", "cashier", "--store", "TLV-01", "--name", "Noa"])
    assert result.exit_code == 0, result.output
    assert "created cashier cashier@example.com" in result.output
    r = sign_in(client, "cashier@example.com", "till password")
    assert r.status_code == 200 and r.get_json()["role"] == "cashier"
    headers = {"Authorization": f"Bearer {r.get_json()['access_token']}"}
    # bound to its store: it can use the till, not the marketers' side
    assert client.get("/api/v1/admin/members", headers=headers).status_code == 403
    import jwt
    assert jwt.decode(r.get_json()["access_token"], options={"verify_signature": False})["store"] == store["id"]


@pytest.mark.parametrize("role", ["marketer", "admin"])
def test_staff_create_marketer_and_admin(runner, client, role):
    result = runner.invoke(args=["staff", "create", "--email", f"{role}@example.com", "--password", "long password",
                                 "--role", role])
    assert result.exit_code == 0, result.output
    r = sign_in(client, f"{role}@example.com", "long password")
    headers = {"Authorization": f"Bearer {r.get_json()['access_token']}"}
    assert client.get("/api/v1/admin/members", headers=headers).status_code == 200


def test_staff_create_refusals(runner, app, factory):
    factory.member(email="taken@example.com")
    before = counts(app)
    cases = [
        (["--email", "c@example.com", "--password", "p" * 10, "--role", "cashier"], "store_required"),
        (["--email", "c@example.com", "--password", "p" * 10, "--role", "cashier", "--store", "NOPE"], "unknown_store"),
        (["--email", "taken@example.com", "--password", "p" * 10, "--role", "admin"], "email_taken"),
        (["--email", "not an email", "--password", "p" * 10, "--role", "admin"], "validation_error"),
    ]
    for args, code in cases:
        result = runner.invoke(args=["staff", "create", *args])
        assert result.exit_code == 1, (args, result.output)
        assert code in result.output, (args, result.output)
    result = runner.invoke(args=["staff", "create", "--email", "x@example.com", "--password", "p" * 10,
                                 "--role", "owner"])
    assert result.exit_code == 2 and "owner" in result.output
    assert counts(app) == before


def test_staff_create_hashes_the_password(runner, app):
    runner.invoke(args=["staff", "create", "--email", "a@example.com", "--password", "secret words", "--role", "admin"])
    with app.app_context():
        staff = db.session.scalar(select(members.Staff).where(members.Staff.email == "a@example.com"))
        assert "secret words" not in staff.password_hash
        db.session.remove()


def test_demo_is_safe_to_run_twice(runner, app, client):
    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    after_first = counts(app)
    assert after_first["stores"] >= 3 and after_first["products"] >= 5
    assert after_first["members"] >= 1 and after_first["staff"] >= 3 and after_first["cards"] == after_first["members"]
    second = runner.invoke(args=["demo"])
    assert second.exit_code == 0, second.output
    assert counts(app) == after_first
    # the credentials it prints work, for every role
    logins = [line.split() for line in first.output.splitlines() if "@demo.club" in line]
    assert {parts[0] for parts in logins} >= {"member", "cashier", "marketer", "admin"}
    for role, email, password, *_ in logins:
        r = sign_in(client, email, password)
        assert r.status_code == 200, (email, r.get_json())
        assert r.get_json()["role"] == role
    assert first.output == second.output


def test_demo_products_have_valid_barcodes_and_stores_real_coordinates(runner, app):
    from wallet.barcodes import gtin_check_digit
    from wallet.stores import Product, Store
    runner.invoke(args=["demo"])
    with app.app_context():
        for product in db.session.scalars(select(Product)):
            assert len(product.barcode) == 13 and product.barcode.isdigit()
            assert gtin_check_digit(product.barcode[:-1]) == product.barcode[-1], product.sku
        for store in db.session.scalars(select(Store)):
            assert 29 < store.lat < 34 and 34 < store.lon < 36, store.code  # in Israel
        db.session.remove()


def test_demo_member_has_a_card_and_a_wallet(runner, client):
    output = runner.invoke(args=["demo"]).output
    member_line = next(line for line in output.splitlines() if line.strip().startswith("member"))
    _, email, password, *_ = member_line.split()
    token = sign_in(client, email, password).get_json()["access_token"]
    wallet = client.get("/api/v1/me/wallet", headers={"Authorization": f"Bearer {token}"})
    assert wallet.status_code == 200
    assert wallet.get_json()["card"]["number"] in output


def test_unknown_command(runner):
    result = runner.invoke(args=["staff", "fire"])
    assert result.exit_code == 2

