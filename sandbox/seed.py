"""Loads the synthetic data, demo accounts and signing key into the sandbox database."""

from __future__ import annotations

import json
import logging
from datetime import date

from django.contrib.auth import get_user_model
from django.db import connection, transaction

from sandbox import synthetic
from sandbox.store import Resource, SigningKey, UserProfile

logger = logging.getLogger(__name__)

DEMO_PASSWORD = "demo"


def _ref_id(ref: dict | None, rtype: str) -> str:
    value = (ref or {}).get("reference", "")
    prefix = rtype + "/"
    return value[len(prefix) :] if value.startswith(prefix) else ""


def _tokens(concepts: list[dict]) -> str:
    parts = [f"{c.get('system', '')}|{c.get('code', '')}" for cc in concepts for c in cc.get("coding", [])]
    return (" " + " ".join(parts) + " ") if parts else ""


def _first_code(cc: dict | None) -> str:
    codings = (cc or {}).get("coding") or [{}]
    return codings[0].get("code", "")


def index_columns(res: dict) -> dict:
    """The searchable columns of one resource."""
    rtype = res["resourceType"]
    cols: dict = {"rtype": rtype, "rid": res["id"], "date": None}
    if rtype == "Patient":
        cols["patient_id"] = res["id"]
        names = res.get("name", [])
        cols["text"] = " ".join(" ".join([n.get("family", ""), *n.get("given", [])]) for n in names).lower()[
            :300
        ]
        cols["status"] = res.get("gender", "")
    elif rtype == "Practitioner":
        names = res.get("name", [])
        cols["text"] = " ".join(" ".join([n.get("family", ""), *n.get("given", [])]) for n in names).lower()
    else:
        cols["patient_id"] = _ref_id(res.get("subject"), "Patient")
        cols["encounter_id"] = _ref_id(res.get("encounter"), "Encounter")
        cols["status"] = res.get("status", "")
    if rtype == "Encounter":
        cols["encounter_id"] = res["id"]
        cols["date"] = res.get("period", {}).get("start")
        cols["codes"] = _tokens(res.get("type", []))
        cls = res.get("class", {})
        cols["categories"] = f" {cls.get('system', '')}|{cls.get('code', '')} "
    elif rtype in ("Observation", "DiagnosticReport"):  # both searched by effective[x]
        cols["date"] = res.get("effectiveDateTime") or res.get("effectivePeriod", {}).get("start")
        cols["codes"] = _tokens([res.get("code", {})])
        cols["categories"] = _tokens(res.get("category", []))
    elif rtype == "Condition":
        cols["date"] = res.get("onsetDateTime")
        cols["codes"] = _tokens([res.get("code", {})])
        cols["categories"] = _tokens(res.get("category", []))
        cols["clinical_status"] = _first_code(res.get("clinicalStatus"))
        cols["status"] = _first_code(res.get("verificationStatus"))
    if cols["date"]:
        cols["date"] = normalize_instant(cols["date"])
    return cols


def normalize_instant(value: str) -> str:
    """A FHIR date/dateTime as a sortable UTC string; partial dates keep their precision's start."""
    from sandbox.fhirsearch import parse_fhir_date

    start, _end = parse_fhir_date(value)
    return synthetic.iso(start)


def resource_row(res: dict, last_updated: str) -> dict:
    """The column values of one stored resource (the body gets a meta if it has none)."""
    res.setdefault("meta", {"versionId": "1", "lastUpdated": last_updated})
    return {
        **index_columns(res),
        "last_updated": res["meta"]["lastUpdated"],
        "body": json.dumps(res, separators=(",", ":"), ensure_ascii=False),
    }


def _insert(rows: list[dict]) -> None:
    """One executemany: bulk_create spent most of the seeding time compiling its SQL."""
    fields = [f for f in Resource._meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {quote(Resource._meta.db_table)} ({columns}) VALUES ({marks})"  # noqa: S608 - model names
    defaults = {f.attname: f.get_default() for f in fields}
    with connection.cursor() as cursor:
        cursor.executemany(sql, [[row.get(f.attname, defaults[f.attname]) for f in fields] for row in rows])


def is_seeded() -> bool:
    return Resource.objects.filter(rtype="Patient").exists()


@transaction.atomic
def seed(seed_value: int, anchor: date | None = None) -> int:
    """Insert everything; returns the number of resources. Call only on an empty database.

    `anchor` is the data's "today" (default: today, UTC), so the demo's data are recent."""
    now = synthetic.anchor_at(anchor)
    resources = synthetic.generate(seed_value, now)
    last_updated = synthetic.iso(now)
    _insert([resource_row(r, last_updated) for r in resources])
    _demo_users()
    signing_key()
    logger.info(
        "sandbox seeded with %d resources (seed %d, anchor %s)", len(resources), seed_value, now.date()
    )
    return len(resources)


def _demo_users() -> None:
    User = get_user_model()
    from django.contrib.auth.hashers import make_password

    password = make_password(DEMO_PASSWORD)
    User.objects.get_or_create(
        username="admin", defaults={"is_staff": True, "is_superuser": True, "password": password}
    )
    for pid, family, given, _gender, login in synthetic.PRACTITIONERS:
        if login:
            user, _ = User.objects.get_or_create(username=login, defaults={"password": password})
            UserProfile.objects.get_or_create(
                user=user,
                defaults={"fhir_user": f"Practitioner/{pid}", "display": f"Dr. {given[0]} {family}"},
            )
    names = {p[0]: f"{' '.join(p[2])} {p[1]}".strip() for p in synthetic.PATIENTS}
    for login, pid in synthetic.PATIENT_LOGINS.items():
        user, _ = User.objects.get_or_create(username=login, defaults={"password": password})
        UserProfile.objects.get_or_create(
            user=user, defaults={"fhir_user": f"Patient/{pid}", "display": names[pid]}
        )


def signing_key() -> SigningKey:
    """The current id_token signing key, created on first use."""
    key = SigningKey.objects.order_by("-created_at").first()
    if key:
        return key
    import secrets

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return SigningKey.objects.create(kid=secrets.token_hex(8), private_pem=pem)
