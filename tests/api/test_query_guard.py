"""The guard refuses NUL and lone surrogates in every value of a query parameter, a repeated one included."""
from __future__ import annotations

import pytest

from api import UNSTORABLE
from tests.conftest import assert_problem


@pytest.mark.parametrize("query", ["q=dana%00&q=dana", "q=dana&q=dana%00", "q=dana&q=%00&q=dana"])
def test_every_value_of_a_repeated_parameter_is_checked(client, factory, query):
    marketer = factory.staff("marketer")
    r = client.get(f"/api/v1/admin/members?{query}", headers=marketer["headers"])
    body = assert_problem(r, 422, "validation_error")
    assert body["errors"] == {"query.q": [UNSTORABLE]}, body


@pytest.mark.parametrize("query", ["status=%00&status=active", "status=active&status=%00"])
def test_repeated_status_filter(client, factory, query):
    member = factory.member()
    r = client.get(f"/api/v1/me/coupons?{query}", headers=member["headers"])
    body = assert_problem(r, 422, "validation_error")
    assert body["errors"] == {"query.status": [UNSTORABLE]}, body


def test_one_problem_per_parameter_with_others_named_too(client, factory):
    marketer = factory.staff("marketer")
    r = client.get("/api/v1/admin/members?q=a%00&q=b%00&limit=5&cursor=%00", headers=marketer["headers"])
    body = assert_problem(r, 422, "validation_error")
    assert body["errors"] == {"query.q": [UNSTORABLE], "query.cursor": [UNSTORABLE]}, body


def test_a_nul_in_a_parameter_name_is_refused(client, factory):
    marketer = factory.staff("marketer")
    r = client.get("/api/v1/admin/members?q%00=dana", headers=marketer["headers"])
    body = assert_problem(r, 422, "validation_error")
    assert body["errors"] == {"query": [UNSTORABLE]}, body


def test_repeated_clean_values_pass_the_guard(client, factory):
    marketer = factory.staff("marketer")
    r = client.get("/api/v1/admin/members?q=dana&q=dan", headers=marketer["headers"])
    assert r.status_code == 200, r.get_data(as_text=True)
