"""On PostgreSQL (.ci/postgres-tests): the production database engine, cache table and encryption."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection

from smartapp import security
from smartapp.models import Ehr

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _only_on_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("DATABASE_URL is not PostgreSQL (run .ci/postgres-tests)")


def test_it_runs_on_psycopg_3_with_persistent_healthy_connections():
    assert connection.settings_dict["ENGINE"] == "django.db.backends.postgresql"
    assert connection.settings_dict["CONN_HEALTH_CHECKS"] is True
    assert connection.Database.__name__ == "psycopg"  # psycopg 3, not psycopg2


def test_it_shares_the_cache_through_the_database_table(ehr):
    cache.set("smartapp:pg-probe", {"ok": 1}, 30)
    assert cache.get("smartapp:pg-probe") == {"ok": 1}
    assert security.ehr_origins().frame_ancestors == ("https://ehr.example.org",)
    assert cache.get(security.CACHE_KEY) is not None


def test_it_stores_only_ciphertext(ehr):
    with connection.cursor() as cursor:
        cursor.execute("SELECT client_secret FROM smartapp_ehr WHERE id = %s", [ehr.id])
        (stored,) = cursor.fetchone()
    assert "test-secret" not in stored
    assert Ehr.objects.get(pk=ehr.pk).client_secret == "test-secret"
