"""POST /admin/products/import: the catalogue's CSV import over HTTP, with its per-row report."""
from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from api.extensions import db
from tests.api.test_stores_import_cli import barcode, products
from tests.conftest import assert_problem
from wallet.audit import AuditEntry
from wallet.stores import Product

IMPORT = "/api/v1/admin/products/import"
HEADER = "sku,barcode,name,category,price,complementary\n"


@pytest.fixture
def marketer(factory):
    return factory.staff("marketer")["headers"]


def csv_post(client, text: str | bytes, headers, **kwargs):
    body = text.encode() if isinstance(text, str) else text
    return client.post(IMPORT, data=body, headers={**headers, "Content-Type": "text/csv; charset=utf-8"}, **kwargs)


def skus(app) -> dict[str, Product]:
    with app.app_context():
        found = {p.sku: p for p in db.session.scalars(select(Product))}
        db.session.expunge_all()
        db.session.remove()
        return found


def test_good_rows_are_kept_and_bad_rows_reported_by_their_line(client, app, marketer):
    text = (HEADER
            + f"COF-1,{barcode(1)},Coffee beans,coffee,42.50,TEA-1\n"
            + f"BAD-1,{barcode(2)[:-1]}0,Wrong check digit,,,\n"
            + "\n"  # a blank line is not a row, but it still counts as a line
            + f'TEA-1,{barcode(3)},"Tea, ""green""\nloose",tea,12,\n'  # a quoted two-line cell
            + f"NOPRICE,{barcode(4)},Bad price,,12.345,\n"
            + f"COF-1,{barcode(5)},Same SKU again,,,\n")
    r = csv_post(client, text, marketer)
    assert r.status_code == 200, r.get_json()
    report = r.get_json()
    assert report["import_id"].startswith("imp_")
    assert {k: report[k] for k in ("dry_run", "rows", "accepted", "created", "updated", "unchanged")} == {
        "dry_run": False, "rows": 5, "accepted": 2, "created": 2, "updated": 0, "unchanged": 0}
    assert report["refused"] == [
        {"line": 3, "sku": "BAD-1", "errors": {"barcode": ["Check digit does not match."]}},
        {"line": 7, "sku": "NOPRICE", "errors": {"price": ["A non-negative amount with at most two decimal places."]}},
        {"line": 8, "sku": "COF-1", "errors": {"sku": ["Already on line 2 of this file."]}},
    ]
    assert report["warnings"] == []
    found = skus(app)
    assert set(found) == {"COF-1", "TEA-1"}
    assert found["TEA-1"].name == 'Tea, "green"\nloose'
    assert found["COF-1"].complementary == [found["TEA-1"].id]
    with app.app_context():
        entry = db.session.scalars(select(AuditEntry).where(AuditEntry.entity == "product")).one()
        assert (entry.action, entry.entity_id) == ("import", report["import_id"])
        assert entry.after == {"file": "upload.csv", "bytes": len(text.encode()), "rows": 5, "created": 2,
                               "updated": 0, "unchanged": 0, "refused": 3, "warnings": 0}
        db.session.remove()

    # the same file again: nothing changes, the report says so
    again = csv_post(client, text, marketer).get_json()
    assert (again["created"], again["updated"], again["unchanged"], len(again["refused"])) == (0, 0, 2, 3)


def test_a_spreadsheet_file_with_a_bom_and_crlf_lines_as_a_multipart_upload(client, app, marketer):
    text = ("\ufeffSKU,Barcode,Name,Price\r\n"
            f"A-1,{barcode(10)},Alpha,1.00\r\n"
            f"B-2,{barcode(11)},\"Beta\r\nsecond line\",2.00\r\n")
    r = client.post(IMPORT, headers=marketer, content_type="multipart/form-data",
                    data={"file": (io.BytesIO(text.encode("utf-8")), "catalogue from excel.csv")})
    assert r.status_code == 200, r.get_json()
    report = r.get_json()
    assert (report["rows"], report["created"], report["refused"]) == (2, 2, [])
    found = skus(app)
    assert found["A-1"].name == "Alpha" and str(found["A-1"].price) == "1.00"
    assert found["B-2"].name == "Beta\r\nsecond line"  # a quoted cell keeps its own line break


def test_formula_cells_are_never_echoed_as_formulas(client, app, marketer):
    text = ("sku,barcode,name,complementary\n"
            f"=HYPERLINK(\"x\"),{barcode(20)}0,Formula SKU with a bad barcode,\n"
            f"+SUM(1),{barcode(21)},Kept,@cmd|calc\n"
            f"-1,{barcode(22)}, ,\n")
    report = csv_post(client, text, marketer).get_json()
    assert report["created"] == 1
    assert [(p["line"], p["sku"]) for p in report["refused"]] == [(2, "'=HYPERLINK(\"x\")"), (4, "'-1")]
    assert report["warnings"] == [{"line": 3, "sku": "'+SUM(1)", "errors": {
        "complementary": ["No product with the SKU '@cmd, calc; left out."]}}]
    dumped = r_text = str(report)
    for raw in ("'=", "'+", "'-", "'@"):
        assert raw in dumped
    assert "[=" not in r_text and " =" not in r_text
    assert "+SUM(1)" in skus(app)  # what is stored is what the file said; only the echo is quoted


def test_a_dry_run_reports_and_saves_nothing(client, app, marketer):
    r = client.post(IMPORT + "?dry_run=true", data=HEADER + f"X-1,{barcode(30)},X,,,\n", headers={
        **marketer, "Content-Type": "text/csv"})
    assert r.status_code == 200
    assert (r.get_json()["dry_run"], r.get_json()["created"]) == (True, 1)
    assert products(app) == 0
    with app.app_context():
        assert db.session.scalars(select(AuditEntry)).all() == []
        db.session.remove()


def test_bad_files_are_problems_and_change_nothing(client, app, marketer):
    r = csv_post(client, "name,colour\nx,red\n", marketer)
    body = assert_problem(r, 422, "invalid_csv_header")
    assert body["errors"]["header"] == ["Unknown columns: 'colour'.", "Missing columns: sku, barcode."]
    assert_problem(csv_post(client, "", marketer), 422, "invalid_csv_header")
    assert_problem(csv_post(client, HEADER.encode() + "é,\n".encode("latin-1"), marketer), 422, "invalid_csv")
    assert_problem(csv_post(client, HEADER + "a\x00b,1,2\n", marketer), 422, "invalid_csv")
    assert_problem(client.post(IMPORT, json={"sku": "x"}, headers=marketer), 415, "unsupported_media_type")
    assert_problem(client.post(IMPORT, headers=marketer, content_type="multipart/form-data",
                               data={"other": (io.BytesIO(b"sku"), "a.csv")}), 422, "invalid_csv")
    assert_problem(client.post(IMPORT + "?dry_run=maybe", data=HEADER, headers={
        **marketer, "Content-Type": "text/csv"}), 422, "validation_error")
    assert products(app) == 0


def test_only_marketers_and_admins_import(client, factory):
    body = HEADER + f"X-1,{barcode(40)},X,,,\n"
    assert_problem(client.post(IMPORT, data=body, content_type="text/csv"), 401, "unauthorized")
    member = factory.member()["headers"]
    assert_problem(client.post(IMPORT, data=body, content_type="text/csv", headers=member), 403, "forbidden")
    admin = factory.staff("admin")["headers"]
    assert client.post(IMPORT, data=body, content_type="text/csv", headers=admin).status_code == 200


def test_a_file_over_the_json_limit_is_taken_and_one_over_the_import_limit_is_413(make_app, factory, app):
    big = make_app(LOYALTY_MAX_IMPORT_BYTES=300_000)
    client = big.test_client()
    marketer = factory.staff("marketer")["headers"]
    lines = [HEADER] + [f"SKU-{i:05d},{barcode(1000 + i)},Product number {i} {'x' * 40},,,\n" for i in range(2000)]
    text = "".join(lines)
    assert 65_536 < len(text) < 300_000  # bigger than any JSON body may be
    r = csv_post(client, text, marketer)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["created"] == 2000

    huge = text * 2
    assert_problem(csv_post(client, huge, marketer), 413, "payload_too_large")
    assert_problem(client.post(IMPORT, headers=marketer, content_type="multipart/form-data",
                               data={"file": (io.BytesIO(huge.encode()), "big.csv")}), 413, "payload_too_large")
    assert products(app) == 2000


def test_too_many_rows_is_422(client, app, marketer, monkeypatch):
    from api.views import product_import
    monkeypatch.setattr(product_import, "MAX_ROWS", 3)
    text = HEADER + "".join(f"S{i},{barcode(50 + i)},N,,,\n" for i in range(4))
    body = assert_problem(csv_post(client, text, marketer), 422, "too_many_rows")
    assert body["errors"] == {"file": ["4 rows; at most 3."]}
    assert_problem(csv_post(client, text.replace("\n", "\r"), marketer), 422, "too_many_rows")  # old Mac lines
    assert products(app) == 0
    assert csv_post(client, HEADER + "".join(f"S{i},{barcode(50 + i)},N,,,\n" for i in range(3)),
                    marketer).status_code == 200


def test_the_operation_is_documented_with_both_body_types(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    operation = spec["paths"]["/api/v1/admin/products/import"]["post"]
    assert {"text/csv", "multipart/form-data"} <= set(operation["requestBody"]["content"])
    assert "413" in operation["responses"] and "200" in operation["responses"]


def test_an_idempotency_key_replays_the_report_of_a_multipart_upload(client, app, marketer):
    def send(name="K"):
        return client.post(IMPORT, headers={**marketer, "Idempotency-Key": "import-1"},
                           content_type="multipart/form-data",  # each send has its own random boundary
                           data={"file": (io.BytesIO((HEADER + f"K-1,{barcode(60)},{name},,,\n").encode()), "k.csv")})
    first, second = send(), send()
    assert_problem(send("Another name"), 409, "idempotency_conflict")
    assert first.status_code == second.status_code == 200
    assert second.get_json() == first.get_json()
    assert second.headers.get("Idempotency-Replayed") == "true"
    assert first.get_json()["created"] == 1
    with app.app_context():
        assert len(db.session.scalars(select(AuditEntry).where(AuditEntry.action == "import")).all()) == 1
        db.session.remove()
