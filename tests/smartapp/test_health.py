"""Health probes are cheap, unauthenticated and honest."""

from __future__ import annotations

from unittest import mock

from django.db.utils import OperationalError


def test_it_reports_the_process_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_it_reports_ready_when_the_database_answers(client, db):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


def test_it_reports_unavailable_when_the_database_fails(client, db):
    with mock.patch("smartapp.health.connection.cursor", side_effect=OperationalError("down")):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"
