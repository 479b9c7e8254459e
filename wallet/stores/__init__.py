"""Stores and products: where members shop and what they scan; the marketer's catalogue and its CSV import.

Neither is ever deleted: check-ins, scans and purchases point at them. Deleting one archives it: it disappears
from the marketer's lists and from the shopper's app, and its code, SKU and barcode stay reserved.
"""
from .models import Product, Store
from .product_import import CSV_COLUMNS, CSV_REQUIRED, ImportProblem, ImportReport, import_products
from .products import (
    MAX_COMPLEMENTARY,
    PRODUCT_FIELDS,
    archive_product,
    create_product,
    get_product,
    list_products,
    product_by_barcode,
    products_by_ids,
    update_product,
)
from .stores import (
    COOLDOWN_MINUTES,
    RADIUS_M,
    STORE_FIELDS,
    archive_store,
    create_store,
    get_store,
    list_stores,
    store_by_code,
    update_store,
    valid_timezone,
)

__all__ = [
    "COOLDOWN_MINUTES", "CSV_COLUMNS", "CSV_REQUIRED", "MAX_COMPLEMENTARY", "PRODUCT_FIELDS", "RADIUS_M",
    "STORE_FIELDS", "ImportProblem", "ImportReport", "Product", "Store", "archive_product", "archive_store",
    "create_product", "create_store", "get_product", "get_store", "import_products", "list_products", "list_stores",
    "product_by_barcode", "products_by_ids", "store_by_code", "update_product", "update_store", "valid_timezone",
]
