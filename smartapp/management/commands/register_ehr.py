"""Register (or update, by issuer) an EHR from scripts and tests; prints its slug."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from smartapp.models import Ehr, normalize_issuer


def _unique_slug(base: str, exclude_pk: int | None) -> str:
    base = slugify(base)[:90] or "ehr"
    slug, n = base, 2
    while Ehr.objects.filter(slug=slug).exclude(pk=exclude_pk).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


class Command(BaseCommand):
    help = "Register an EHR (idempotent: an existing issuer is updated). Prints the slug."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--iss", required=True, help="FHIR base URL (issuer)")
        parser.add_argument("--client-id", required=True)
        parser.add_argument("--client-secret", default=None, help="Kept unchanged when omitted")
        parser.add_argument("--auth-method", choices=Ehr.AuthMethod.values, default=None)
        parser.add_argument("--scope", default=None, help="EHR launch scopes")
        parser.add_argument("--standalone-scope", default=None)
        parser.add_argument(
            "--frame-ancestor",
            action="append",
            default=None,
            help="Origin allowed to show the app in an iframe, e.g. https://ehr.example.org (repeatable). "
            "Without one, EHR launch inside the EHR's page is refused by the browser.",
        )
        parser.add_argument("--slug", default=None)
        parser.add_argument("--disabled", action="store_true")

    def handle(self, *args, **opts):
        iss = normalize_issuer(opts["iss"])
        ehr = Ehr.objects.filter(iss=iss).first() or Ehr(iss=iss)
        ehr.name = opts["name"]
        ehr.client_id = opts["client_id"]
        ehr.enabled = not opts["disabled"]
        if opts["client_secret"] is not None:
            ehr.client_secret = opts["client_secret"]
        if opts["auth_method"]:
            ehr.auth_method = opts["auth_method"]
        if opts["scope"] is not None:
            ehr.ehr_launch_scope = " ".join(opts["scope"].split())
        if opts["standalone_scope"] is not None:
            ehr.standalone_scope = " ".join(opts["standalone_scope"].split())
        if opts["frame_ancestor"] is not None:
            ancestors = " ".join(opts["frame_ancestor"])
            if ancestors != ehr.frame_ancestors:
                ehr.framing_refused_at = None  # judged afresh against the new origins
            ehr.frame_ancestors = ancestors
        if opts["slug"]:
            ehr.slug = opts["slug"]
        elif not ehr.slug:
            ehr.slug = _unique_slug(opts["name"], ehr.pk)
        if ehr.auth_method != Ehr.AuthMethod.PRIVATE_KEY_JWT and not ehr.client_secret:
            raise CommandError(f"{ehr.auth_method} needs --client-secret")
        try:
            ehr.full_clean(exclude=["client_secret"])
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        ehr.save()
        if not ehr.frame_ancestors:
            # The default, and the reason an embedded launch shows only a blank frame.
            self.stderr.write(
                "Warning: no --frame-ancestor, so this EHR cannot show the app in an iframe (EHR launch "
                "inside the EHR's page); only standalone launch works. Add the EHR's web origin, e.g. "
                "--frame-ancestor https://ehr.example.org"
            )
        self.stdout.write(ehr.slug)
