"""`loyalty products import FILE`: a whole catalogue from CSV; bad rows reported, good rows kept."""
from __future__ import annotations

import csv
import time

import pytest
from sqlalchemy import func, select

from api.extensions import db
from wallet.barcodes import gtin_check_digit
from wallet.stores import Product

HEADER = ["sku", "barcode", "name", "description", "category", "price", "currency", "image_url", "complementary",
          "active"]


def barcode(i: int) -> str:
    body = f"729{i:09d}"
    return body + gtin_check_digit(body)


def write_catalogue(path, n: int, bad: int = 0) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for i in range(n):
            complementary = "|".join(f"SKU-{j:05d}" for j in (i + 1, i + 2) if j < n)
            out.writerow([f"SKU-{i:05d}", barcode(i), f"Product {i}, \"quoted\"", "Line one\nline two",
                          ["coffee", "tea", "dairy", "bakery"][i % 4], f"{i % 100}.{i % 100:02d}", "", "",
                          complementary, "true"])
        for k in range(bad):
            out.writerow([f"BAD-{k}", barcode(n + k)[:-1] + str((int(barcode(n + k)[-1]) + 1) % 10), "Bad", "",
                          "", "", "", "", "", ""])


def products(app) -> int:
    with app.app_context():
        value = db.session.scalar(select(func.count()).select_from(Product))
        db.session.remove()
        return value


def test_ten_thousand_products(app, tmp_path):
    path = tmp_path / "catalogue.csv"
    write_catalogue(path, 10_000, bad=5)
    started = time.perf_counter()
    result = app.test_cli_runner().invoke(args=["products", "import", str(path)])
    elapsed = time.perf_counter() - started
    print(f"\nCSV import of 10,000 products ({app.config['SQLALCHEMY_DATABASE_URI'].split(':')[0]}): {elapsed:.2f} s")
    assert result.exit_code == 1, result.output  # some rows were refused
    assert "10005 rows, 10000 created, 0 updated, 0 unchanged, 5 refused, 0 warnings" in result.output
    assert result.output.count("refused line") == 5
    assert "refused line 20002 (BAD-0): barcode: Check digit does not match." in result.output  # two lines a row
    assert products(app) == 10_000
    with app.app_context():
        p = db.session.scalar(select(Product).where(Product.sku == "SKU-09998"))
        last = db.session.scalar(select(Product.id).where(Product.sku == "SKU-09999"))
        assert (p.name, p.description, p.category, str(p.price)) == ('Product 9998, "quoted"', "Line one\nline two",
                                                                     "dairy", "98.98")
        assert p.complementary == [last]
        db.session.remove()
    assert elapsed < 60
    # The same file again changes nothing and is quick.
    again = app.test_cli_runner().invoke(args=["products", "import", str(path)])
    assert "0 created, 0 updated, 10000 unchanged, 5 refused" in again.output
    assert products(app) == 10_000


def test_dry_run_saves_nothing(app, tmp_path):
    path = tmp_path / "catalogue.csv"
    write_catalogue(path, 20)
    result = app.test_cli_runner().invoke(args=["products", "import", "--dry-run", str(path)])
    assert result.exit_code == 0, result.output
    assert "checked (dry run, nothing saved) catalogue.csv: 20 rows, 20 created" in result.output
    assert products(app) == 0


@pytest.mark.parametrize("content, message", [
    ("name,price\nx,1\n", "invalid_csv_header"),
    (b"sku,barcode,name\nA,96385074,Caf\xe9\n", "invalid_csv: the file is not UTF-8"),
])
def test_unreadable_files_are_refused_whole(app, tmp_path, content, message):
    path = tmp_path / "catalogue.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = app.test_cli_runner().invoke(args=["products", "import", str(path)])
    assert result.exit_code == 1 and message in result.output
    assert products(app) == 0


def test_a_byte_order_mark_and_windows_line_ends_are_fine(app, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffsku,barcode,name\r\nA,96385074,Café\r\n".encode())
    result = app.test_cli_runner().invoke(args=["products", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert products(app) == 1
