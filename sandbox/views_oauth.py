"""Authorization-server endpoints: discovery, authorize (+ login, patient picker, consent), token,
introspection, revocation, JWKS and the SMART style document."""

from __future__ import annotations

import json
import re
import secrets
import time
from urllib.parse import urlencode

from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from sandbox import fhirsearch, oauth, synthetic
from sandbox.faults import stats
from sandbox.oauth import OAuthError
from sandbox.scopes import NON_CLINICAL, describe, describe_all, parse_clinical
from sandbox.store import Client, Resource, UserProfile

CAPABILITIES = [
    "launch-ehr",
    "launch-standalone",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "context-ehr-patient",
    "context-ehr-encounter",
    "context-standalone-patient",
    "context-standalone-encounter",
    "context-banner",
    "context-style",
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
    "sso-openid-connect",
    "authorize-post",
]
SCOPES_SUPPORTED = [
    *sorted(NON_CLINICAL),
    "patient/*.rs",
    "user/*.rs",
    "system/*.rs",
    "patient/*.read",
    "user/*.read",
    "system/*.read",
    # Each type by name too, as EHRs list theirs.
    *(f"{level}/{rtype}.rs" for level in ("patient", "user") for rtype in fhirsearch.SUPPORTED_TYPES),
]
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
TXN_TTL = 600
MAX_TXNS = 20


def _endpoints(request: HttpRequest) -> dict[str, str]:
    base = oauth.base_url(request)
    return {
        "authorize": f"{base}/auth/authorize",
        "token": f"{base}/auth/token",
        "introspect": f"{base}/auth/introspect",
        "revoke": f"{base}/auth/revoke",
        "jwks": f"{base}/.well-known/jwks.json",
        "style": f"{base}/smart-style.json",
    }


@require_GET
def smart_configuration(request: HttpRequest) -> JsonResponse:
    """Reference: https://hl7.org/fhir/smart-app-launch/STU2.2/conformance.html"""
    ep = _endpoints(request)
    resp = JsonResponse(
        {
            "issuer": oauth.fhir_base(request),
            "jwks_uri": ep["jwks"],
            "authorization_endpoint": ep["authorize"],
            "token_endpoint": ep["token"],
            "introspection_endpoint": ep["introspect"],
            "revocation_endpoint": ep["revoke"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ],
            "token_endpoint_auth_signing_alg_values_supported": list(oauth.ASSERTION_ALGS),
            "scopes_supported": SCOPES_SUPPORTED,
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "capabilities": CAPABILITIES,
        }
    )
    resp["Cache-Control"] = "public, max-age=60"
    return resp


@require_GET
def jwks(request: HttpRequest) -> JsonResponse:
    resp = JsonResponse(oauth.public_jwks())
    resp["Cache-Control"] = "public, max-age=300"
    return resp


@require_GET
def smart_style(request: HttpRequest) -> JsonResponse:
    """Reference: https://hl7.org/fhir/smart-app-launch/STU2.2/scopes-and-launch-context.html#styling"""
    return JsonResponse(
        {
            "color_background": "#f4f6f8",
            "color_error": "#9e2d2d",
            "color_highlight": "#69b5ce",
            "color_modal_backdrop": "",
            "color_success": "#498e49",
            "color_text": "#303030",
            "dim_border_radius": "6px",
            "dim_font_size": "13px",
            "dim_spacing_size": "20px",
            "font_family_body": "Georgia, Times, 'Times New Roman', serif",
            "font_family_heading": "'HelveticaNeue-Light', Helvetica, Arial, 'Lucida Grande', sans-serif",
        }
    )


# --- Authorize ------------------------------------------------------------------------------


def _error_page(request: HttpRequest, message: str, status: int = 400) -> HttpResponse:
    return render(request, "sandbox/error.html", {"message": message}, status=status)


def _redirect(uri: str, params: dict[str, str]) -> HttpResponse:
    """A 302 to the registered redirect_uri (built by hand: any scheme the client registered)."""
    sep = "&" if "?" in uri else "?"
    resp = HttpResponse(status=302)
    resp["Location"] = uri + sep + urlencode({k: v for k, v in params.items() if v})
    resp["Cache-Control"] = "no-store"
    return resp


def _redirect_error(request: HttpRequest, uri: str, error: str, description: str, state: str) -> HttpResponse:
    # `iss` on every authorization response. Reference: https://www.rfc-editor.org/rfc/rfc9207
    return _redirect(
        uri,
        {"error": error, "error_description": description, "state": state, "iss": oauth.fhir_base(request)},
    )


@csrf_exempt  # authorize-post: the app's auto-submitted form comes from another site.
@never_cache
@require_http_methods(["GET", "POST"])
def authorize(request: HttpRequest) -> HttpResponse:
    """Reference: https://hl7.org/fhir/smart-app-launch/STU2.2/app-launch.html#obtain-authorization-code"""
    params = request.POST if request.method == "POST" else request.GET
    client = Client.objects.filter(client_id=params.get("client_id", "")).first()
    if client is None:
        return _error_page(request, "Unknown client_id: this app is not registered with the sandbox EHR.")
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in client.redirect_uri_list() or len(params.getlist("redirect_uri")) != 1:
        return _error_page(request, "The redirect_uri does not exactly match one registered for this app.")
    state = params.get("state", "")

    def fail(error: str, description: str) -> HttpResponse:
        return _redirect_error(request, redirect_uri, error, description, state)

    repeated = [k for k in params if len(params.getlist(k)) > 1]
    if repeated:
        return fail("invalid_request", f"parameter repeated: {repeated[0]}")
    if params.get("response_type") != "code":
        return fail("unsupported_response_type", "response_type must be code")
    if not state:
        return fail("invalid_request", "state is required")
    method = params.get("code_challenge_method", "")
    if not params.get("code_challenge") or not method:
        return fail("invalid_request", "PKCE is required: code_challenge and code_challenge_method=S256")
    if method != "S256":
        return fail("invalid_request", "code_challenge_method must be S256 (plain is not supported)")
    if not _CHALLENGE.match(params["code_challenge"]):
        return fail("invalid_request", "code_challenge must be 43 base64url characters (S256)")
    if params.get("aud", "").rstrip("/") != oauth.fhir_base(request):
        return fail("invalid_request", "aud must be this server's FHIR base URL")
    scopes = params.get("scope", "").split()
    if not scopes:
        return fail("invalid_scope", "scope is required")
    txn = {
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "scope": scopes,
        "code_challenge": params["code_challenge"],
        "nonce": params.get("nonce", ""),
        "patient": "",
        "encounter": "",
        "user": "",
        "ehr_launch": False,
        "created": time.time(),
    }
    launch = params.get("launch", "")
    if launch:
        if "launch" not in scopes:
            return fail("invalid_scope", "a launch parameter requires the launch scope")
        try:
            ctx = oauth.consume_launch(client, launch)
        except OAuthError as e:
            return fail(e.error, e.description)
        txn.update(patient=ctx.patient_id, encounter=ctx.encounter_id, user=ctx.fhir_user, ehr_launch=True)
    elif "launch" in scopes:
        return fail("invalid_request", "the launch scope requires a launch parameter (EHR launch)")
    if txn["ehr_launch"] and not client.consent_on_ehr_launch:
        return _finish(request, client, txn, txn["scope"])
    txn_id = secrets.token_urlsafe(16)
    pending = {
        k: v
        for k, v in request.session.get("sandbox_txns", {}).items()
        if v["created"] > time.time() - TXN_TTL
    }
    pending = dict(sorted(pending.items(), key=lambda kv: kv[1]["created"])[-(MAX_TXNS - 1) :])
    pending[txn_id] = txn
    request.session["sandbox_txns"] = pending
    return HttpResponseRedirect(reverse("sandbox:authorize_continue", args=[txn_id]))


def _finish(request: HttpRequest, client: Client, txn: dict, granted: list[str]) -> HttpResponse:
    code = oauth.issue_code(
        client,
        txn["redirect_uri"],
        granted,
        txn["code_challenge"],
        txn["nonce"],
        txn["patient"],
        txn["encounter"],
        txn["user"],
        need_patient_banner=not txn["ehr_launch"],
    )
    return _redirect(
        txn["redirect_uri"], {"code": code, "state": txn["state"], "iss": oauth.fhir_base(request)}
    )


def _profile(request: HttpRequest) -> UserProfile | None:
    if not request.user.is_authenticated:
        return None
    return UserProfile.objects.filter(user=request.user).first()


def _needs_patient(scopes: list[str]) -> bool:
    return "launch/patient" in scopes or any(
        (c := parse_clinical(s)) is not None and c.context == "patient" for s in scopes
    )


def _patient_choices() -> list[dict]:
    """Every patient with the official (else first) name and birth date of its stored record."""
    out = []
    for body in Resource.objects.filter(rtype="Patient").order_by("rid").values_list("body", flat=True):
        res = json.loads(body)
        names = res.get("name") or [{}]
        name = next((n for n in names if n.get("use") == "official"), names[0])
        text = " ".join([*name.get("given", []), name.get("family", "")]).strip()
        out.append({"id": res["id"], "name": text, "birth": res.get("birthDate", "")})
    return out


@never_cache
@require_http_methods(["GET", "POST"])
def authorize_continue(request: HttpRequest, txn_id: str) -> HttpResponse:
    """The interactive steps of one authorization request: login, patient picker, consent."""
    txns = request.session.get("sandbox_txns", {})
    txn = txns.get(txn_id)
    if txn is None or txn["created"] < time.time() - TXN_TTL:
        return _error_page(
            request, "This authorization request is unknown or expired. Start the launch again."
        )
    client = Client.objects.filter(client_id=txn["client_id"]).first()
    if client is None:
        return _error_page(request, "The app is no longer registered.")

    def save() -> None:
        txns[txn_id] = txn
        request.session["sandbox_txns"] = txns

    if not txn["user"]:
        profile = _profile(request)
        if profile is None:
            return HttpResponseRedirect(f"{reverse('sandbox:login')}?{urlencode({'next': request.path})}")
        txn["user"] = profile.fhir_user
        if profile.is_patient:
            txn["patient"] = profile.fhir_user.split("/", 1)[1]
        save()
    if _needs_patient(txn["scope"]) and not txn["patient"]:
        chosen = request.POST.get("patient", "") if request.method == "POST" else ""
        if chosen and Resource.objects.filter(rtype="Patient", rid=chosen).exists():
            txn["patient"] = chosen
            save()
            return HttpResponseRedirect(request.path)
        return render(request, "sandbox/picker.html", {"patients": _patient_choices(), "client": client})
    if "launch/encounter" in txn["scope"] and not txn["encounter"] and txn["patient"]:
        latest = (
            Resource.objects.filter(rtype="Encounter", patient_id=txn["patient"])
            .order_by("-date")
            .values_list("rid", flat=True)
            .first()
        )
        txn["encounter"] = latest or ""
        save()
    granted_candidates = oauth.grantable_scopes(client, txn["scope"])
    if request.method == "POST" and request.POST.get("action") in ("approve", "deny"):
        txns.pop(txn_id, None)
        request.session["sandbox_txns"] = txns
        if request.POST["action"] == "deny":
            return _redirect_error(
                request, txn["redirect_uri"], "access_denied", "the user denied the request", txn["state"]
            )
        ticked = set(request.POST.getlist("scope"))
        return _finish(request, client, txn, [s for s in granted_candidates if s in ticked])
    return render(
        request,
        "sandbox/consent.html",
        {
            "client": client,
            "groups": describe_all(granted_candidates),
            "refused": [(s, describe(s)[1]) for s in txn["scope"] if s not in granted_candidates],
            "patient": txn["patient"],
            "user": txn["user"],
        },
    )


# --- Login ----------------------------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    next_url = request.POST.get("next") or request.GET.get("next") or reverse("sandbox:ehr_home")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = reverse("sandbox:ehr_home")
    form = AuthenticationForm(request, data=request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        auth_login(request, form.get_user())
        return HttpResponseRedirect(next_url)
    accounts = {
        "clinicians": [p[4] for p in synthetic.PRACTITIONERS if p[4]],
        "patients": list(synthetic.PATIENT_LOGINS),
    }
    return render(request, "sandbox/login.html", {"form": form, "next": next_url, "accounts": accounts})


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    auth_logout(request)
    return HttpResponseRedirect(reverse("sandbox:login"))


# --- Token, introspection, revocation -------------------------------------------------------


def _oauth_json(body: dict, status: int = 200, headers: dict | None = None) -> JsonResponse:
    resp = JsonResponse(body, status=status)
    resp["Cache-Control"] = "no-store"
    resp["Pragma"] = "no-cache"
    for k, v in (headers or {}).items():
        resp[k] = v
    return resp


def _oauth_error(e: OAuthError) -> JsonResponse:
    """Reference: https://www.rfc-editor.org/rfc/rfc6749#section-5.2"""
    headers = {"WWW-Authenticate": 'Basic realm="sandbox"'} if e.basic_challenge else None
    return _oauth_json({"error": e.error, "error_description": e.description}, e.status, headers)


def _form_post(request: HttpRequest) -> None:
    if request.content_type != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")


@csrf_exempt
@require_POST
def token(request: HttpRequest) -> JsonResponse:
    """Reference: https://hl7.org/fhir/smart-app-launch/STU2.2/app-launch.html#obtain-access-token"""
    grant_type = request.POST.get("grant_type", "")
    stats.token(grant_type or "missing")
    ep = _endpoints(request)
    issuer = oauth.fhir_base(request)
    try:
        _form_post(request)
        client = oauth.authenticate_client(request, ep["token"])
        stats.token_client(grant_type or "missing", client.client_id)
        if (client.faults or {}).get("token_latency_ms"):
            time.sleep(client.faults["token_latency_ms"] / 1000)  # e.g. to stop the app mid-refresh
        failure = oauth.token_fault(client)
        if failure:
            headers = (
                {"Retry-After": str((client.faults or {}).get("retry_after", 1))}
                if failure in (429, 503)
                else None
            )
            return _oauth_json(
                {"error": "temporarily_unavailable", "error_description": f"injected fault: HTTP {failure}"},
                failure,
                headers,
            )
        if grant_type == "authorization_code":
            grant = oauth.exchange_code(
                client,
                request.POST.get("code", ""),
                request.POST.get("redirect_uri", ""),
                request.POST.get("code_verifier", ""),
            )
            body = oauth.token_response(grant, issuer, issuer, ep["style"], oauth.new_refresh_token(grant))
        elif grant_type == "refresh_token":
            grant, new_refresh = oauth.refresh(
                client, request.POST.get("refresh_token", ""), request.POST.get("scope", "")
            )
            body = oauth.token_response(grant, issuer, issuer, ep["style"], new_refresh)
        elif grant_type == "client_credentials":
            grant = oauth.client_credentials(
                client, request.POST.get("scope", ""), "client_assertion" in request.POST
            )
            body = oauth.token_response(
                grant, issuer, issuer, ep["style"], None, default_ttl=oauth.BACKEND_TTL
            )
        else:
            raise OAuthError("unsupported_grant_type", f"unsupported grant_type: {grant_type or '(missing)'}")
    except OAuthError as e:
        return _oauth_error(e)
    return _oauth_json(body)


def _audiences(request: HttpRequest, endpoint: str) -> list[str]:
    """Assertions for introspection/revocation may name that endpoint or the token endpoint."""
    ep = _endpoints(request)
    return [ep[endpoint], ep["token"]]


@csrf_exempt
@require_POST
def introspect(request: HttpRequest) -> JsonResponse:
    """Reference: https://www.rfc-editor.org/rfc/rfc7662"""
    stats.other("introspect")
    try:
        _form_post(request)
        oauth.authenticate_client(request, _audiences(request, "introspect"))
    except OAuthError as e:
        return _oauth_error(e)
    issuer = oauth.fhir_base(request)
    return _oauth_json(oauth.introspect(request.POST.get("token", ""), issuer, issuer))


@csrf_exempt
@require_POST
def revoke(request: HttpRequest) -> HttpResponse:
    """Reference: https://www.rfc-editor.org/rfc/rfc7009"""
    stats.other("revoke")
    try:
        _form_post(request)
        client = oauth.authenticate_client(request, _audiences(request, "revoke"))
    except OAuthError as e:
        return _oauth_error(e)
    if not request.POST.get("token"):
        return _oauth_error(OAuthError("invalid_request", "token is required"))
    oauth.revoke(client, request.POST["token"])
    return _oauth_json({})
