"""Framing and cookies for an app that EHRs embed cross-site: CSP, frame-ancestors, CHIPS.

- Every response gets a Content-Security-Policy (django-csp, settings.CONTENT_SECURITY_POLICY).
  The launch, logout and dashboard views may be framed by the enabled EHRs' registered origins
  (`frame-ancestors`, replacing X-Frame-Options there; SMART_FRAMEABLE_VIEWS); everything else
  (admin, JWKS, probes) is `frame-ancestors 'none'` + `X-Frame-Options: DENY`.
- The session and CSRF cookies get the `Partitioned` attribute (CHIPS), so browsers that block
  third-party cookies still keep them inside the EHR's iframe, in a per-EHR partition.

The origins come from the database and are cached in the shared cache; saving or deleting an
Ehr invalidates the cache (signals below), and a TTL bounds staleness for writes made by a
process that never loaded this module.

Reference: https://www.w3.org/TR/CSP3/#directive-frame-ancestors
Reference: https://developer.mozilla.org/en-US/docs/Web/Privacy/Guides/Privacy_sandbox/Partitioned_cookies
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from http.cookies import Morsel

from csp.constants import HEADER as CSP_HEADER
from csp.constants import NONE, SELF
from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from smartapp import cachepolicy
from smartapp.models import Ehr
from smartapp.safety import normalize_origin, origin_of_url

logger = logging.getLogger(__name__)

CACHE_KEY = "smartapp:csp:ehr-origins:v1"


@dataclass(frozen=True)
class EhrOrigins:
    """Origins the policy allows because of the enabled EHRs."""

    frame_ancestors: tuple[str, ...] = ()
    authorize: tuple[str, ...] = ()


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(values)))


def load_ehr_origins() -> EhrOrigins:
    """Read the enabled EHRs' frame ancestors and authorization-endpoint origins from the database."""
    frame_ancestors: list[str] = []
    authorize: list[str] = []
    rows = Ehr.objects.filter(enabled=True).values_list(
        "pk", "frame_ancestors", "authorize_url_override", "discovery"
    )
    for pk, ancestors, authorize_override, discovery in rows:
        for raw in ancestors.split():
            origin = normalize_origin(raw)
            if origin is None:
                logger.warning("ignoring invalid frame ancestor for EHR %s: %.100r", pk, raw)
            else:
                frame_ancestors.append(origin)
        endpoint = authorize_override or (discovery or {}).get("authorization_endpoint") or ""
        if isinstance(endpoint, str) and endpoint:
            origin = origin_of_url(endpoint)
            if origin is not None:
                authorize.append(origin)
    return EhrOrigins(_unique(frame_ancestors), _unique(authorize))


def ehr_origins() -> EhrOrigins:
    """The enabled EHRs' origins, from the shared cache when possible."""
    cached = cachepolicy.get(cachepolicy.CSP_ORIGINS, CACHE_KEY)
    if isinstance(cached, EhrOrigins):
        return cached
    origins = load_ehr_origins()  # also during a cache outage: the database has them
    cachepolicy.set(cachepolicy.CSP_ORIGINS, CACHE_KEY, origins, settings.SMART_CSP_CACHE_TTL)
    return origins


@receiver(post_save, sender=Ehr, dispatch_uid="smartapp.security.invalidate_on_save")
@receiver(post_delete, sender=Ehr, dispatch_uid="smartapp.security.invalidate_on_delete")
def invalidate_ehr_origins(**kwargs) -> None:
    """Any change to an EHR may change who may frame the app: drop the cached origins."""
    # In a cache outage the stale entry expires within SMART_CSP_CACHE_TTL.
    cachepolicy.delete(cachepolicy.CSP_ORIGINS, CACHE_KEY)


# --- Embedding diagnostics ------------------------------------------------------------------------
# Chromium refuses a framed page whose frame-ancestors do not list the parent, and shows only a
# broken-page icon: nothing reaches the app or the EHR's admin. The request itself still arrives,
# marked `Sec-Fetch-Dest: iframe`, so the app can say why on the EHR's admin page.
# Reference: https://www.w3.org/TR/fetch-metadata/#sec-fetch-dest-header
FRAMING_RECORD_INTERVAL = 60  # seconds between two writes of the same EHR's refusal time


def _referrer_origin(request: HttpRequest) -> str | None:
    return origin_of_url(request.headers.get("Referer", ""))


def note_refused_framing(request: HttpRequest, ehr: Ehr, by_parent: bool = False) -> bool:
    """If this iframe navigation will be refused for `ehr`, log it and record when; True if so.

    Refused when the EHR has no usable frame ancestor; with `by_parent` (the EHR's own launch
    request, whose Referer is the page that holds the iframe), also when that page's origin is
    not among the allowed ancestors.
    """
    if request.headers.get("Sec-Fetch-Dest") != "iframe":
        return False
    ancestors = [o for o in (normalize_origin(raw) for raw in ehr.frame_ancestors.split()) if o]
    parent = _referrer_origin(request) if by_parent else None
    # The policy allows every enabled EHR's ancestors, so a known parent is judged against them all.
    refused = parent not in ehr_origins().frame_ancestors if parent else not ancestors
    if not refused:
        return False
    if ancestors:
        logger.warning(
            "EHR %r (id %s) embeds the app from %s, which is not among its frame ancestors; the browser "
            "will refuse to show the app. Add that origin to the EHR's frame ancestors.",
            ehr.name, ehr.pk, parent,
        )  # fmt: skip
    else:
        logger.warning(
            "EHR %r (id %s) embeds the app in an iframe but has no frame ancestor registered; the browser "
            "will refuse to show the app. Add the EHR's origin%s to its frame ancestors.",
            ehr.name, ehr.pk, f" ({parent})" if parent else "",
        )  # fmt: skip
    now = timezone.now()
    recent = now - timedelta(seconds=FRAMING_RECORD_INTERVAL)
    # update(), not save(): no write when recorded a moment ago, and no CSP cache invalidation.
    Ehr.objects.filter(pk=ehr.pk).exclude(framing_refused_at__gt=recent).update(framing_refused_at=now)
    return True


# --- Content-Security-Policy --------------------------------------------------------------------
# django-csp builds and sets the header from settings.CONTENT_SECURITY_POLICY (the strict base
# policy: form-action 'self', frame-ancestors 'none'). What it cannot know is which views the
# enabled EHRs may frame, and their origins: that is this subclass, through its documented hook.


def framing_directives(origins: EhrOrigins) -> dict[str, list[str]]:
    """What a frameable (launch/dashboard) page's policy replaces in the base policy."""
    return {
        # Chrome applies form-action to redirects after a form submission too, so a launch form
        # that redirects to an EHR's authorize endpoint needs that origin here.
        "form-action": [SELF, *origins.authorize],
        "frame-ancestors": list(origins.frame_ancestors) or [NONE],
    }


def _view_names(request: HttpRequest) -> tuple[str, str, str] | None:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return None
    return match.namespace, match.view_name, match.func.__module__.split(".")[0]


def _is_frameable(namespace: str, view_name: str) -> bool:
    for pattern in settings.SMART_FRAMEABLE_VIEWS:
        if pattern.endswith(":*"):
            if namespace == pattern[:-2]:
                return True
        elif view_name == pattern:
            return True
    return False


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware; launch/dashboard views may be framed by the enabled EHRs only.

    Must sit above XFrameOptionsMiddleware: it removes X-Frame-Options from frameable pages
    (frame-ancestors replaces it) and forces DENY everywhere else. A view that sets its own
    Content-Security-Policy keeps it; views of SMART_CSP_EXEMPT_APPS get no policy at all.
    """

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        names = _view_names(request)
        origins = None
        if names is not None:
            namespace, view_name, package = names
            if package in settings.SMART_CSP_EXEMPT_APPS or namespace in settings.SMART_CSP_EXEMPT_APPS:
                return response
            if _is_frameable(namespace, view_name):
                origins = ehr_origins()
        request.smart_ehr_origins = origins  # read by get_policy_parts, below
        response = super().process_response(request, response)
        # Without a policy (django-csp sends none on DEBUG's 404/500 pages) DENY stays.
        if origins is not None and origins.frame_ancestors and CSP_HEADER in response:
            del response["X-Frame-Options"]
        else:
            response["X-Frame-Options"] = "DENY"
        return response

    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponse, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        origins = getattr(request, "smart_ehr_origins", None)
        if origins is not None and not report_only:
            # A view's own @csp_replace still wins over the framing rule.
            parts.replace = {**framing_directives(origins), **(parts.replace or {})}
        return parts


# --- Partitioned cookies (CHIPS) -------------------------------------------------------------------
class PartitionedMorsel(Morsel):
    """A Morsel that renders the `Partitioned` attribute, which http.cookies before 3.14 lacks."""

    def OutputString(self, attrs=None) -> str:  # the stdlib's method name
        return super().OutputString(attrs) + "; Partitioned"


def partition(morsel: Morsel) -> Morsel:
    """The same cookie with the Partitioned attribute."""
    if "partitioned" in Morsel._reserved:  # Python 3.14+ knows the attribute natively
        morsel["partitioned"] = True
        return morsel
    if isinstance(morsel, PartitionedMorsel):
        return morsel
    partitioned = PartitionedMorsel()
    partitioned.set(morsel.key, morsel.value, morsel.coded_value)
    partitioned.update(morsel)
    return partitioned


class PartitionedCookieMiddleware:
    """Mark the session and CSRF cookies `Partitioned` when SMART_PARTITIONED_COOKIES is on.

    Must sit above SessionMiddleware and CsrfViewMiddleware, which set those cookies on the way
    out. CHIPS requires Secure, so insecure cookies are left alone.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not settings.SMART_PARTITIONED_COOKIES:
            return response
        for name in (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME):
            morsel = response.cookies.get(name)
            if morsel is not None and morsel["secure"]:
                response.cookies[name] = partition(morsel)
        return response
