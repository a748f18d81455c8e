"""Token refresh for a launch, refreshed once across all processes.

`refresh_access_token(launch)` refreshes when the token is within the refresh skew of expiry;
`force_refresh(launch)` refreshes regardless (the FHIR client calls it after a 401). Both take a
cross-process lock in the shared cache (`cache.add` is atomic in the database and Redis caches)
so concurrent requests refresh once: a loser whose token still works goes on with it, one whose
token has expired waits for the winner and uses the token the winner stored. Rotated refresh
tokens replace the old one, which is never used twice. After a failure that may pass (no answer,
a 5xx), the EHR is not asked again for SMART_REFRESH_BACKOFF_SECONDS.

A launch is never lost to a slow token endpoint (issue 14, D2):
- the lock outlives the longest possible token call, derived from the transport's total deadline
  (which holds whatever the EHR does), so it cannot expire under a live refresh;
- a token response that arrived whole is used, even if the clock ran past the deadline while it
  was parsed (the transport returns a complete body; parsing happens after the call);
- a refresh token is never sent while an earlier send of it may still be in flight: right before
  sending, the launch is re-read (a token stored meanwhile is used instead), and the refresh token
  is claimed with `cache.add` for longer than the lock. If the lock expired anyway (a stalled
  process), the claim stops a second send and the late refresher waits for the first one's result.

Reference: https://build.fhir.org/ig/HL7/smart-app-launch/app-launch.html#refresh-access-token
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import time
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from smartapp import cachepolicy, discovery, token_endpoint
from smartapp.models import Launch
from smartapp.protocol import OAuthError, TokenError

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.05
# OAuth error codes that mean "not now" rather than "no". Any other error code the token endpoint
# sends is a refusal that ends the grant; no answer, a 5xx or a garbled answer is the EHR failing
# for now: the launch is kept and its current token used while it lasts.
TRANSIENT_OAUTH_ERRORS = frozenset({"server_error", "temporarily_unavailable"})


STORE_ATTEMPTS = (0.25, 0.5, 1.0, 2.0)  # seconds between tries: a database restart takes seconds
# Database round trips around the token call (reload, store), and the store's retries.
LOCK_MARGIN_SECONDS = 5 + math.ceil(sum(STORE_ATTEMPTS))


def lock_seconds() -> int:
    """The lock outlives the slowest refresh (deadline-derived), so it never expires under a live one."""
    return math.ceil(token_endpoint.longest_token_call()) + LOCK_MARGIN_SECONDS


def claim_seconds() -> int:
    """A refresh token's in-flight claim outlasts the lock: a stall past the lock is still covered."""
    return 2 * lock_seconds()


def wait_seconds() -> float:
    """A loser waits as long as the winner's refresh may take."""
    return token_endpoint.longest_token_call() + 1.0


class RefreshError(Exception):
    """The launch could not be refreshed.

    `final`: the grant is dead (refused, revoked, wrong patient) and the user must re-authorize.
    Otherwise the EHR or the network failed for now, and the launch is worth keeping.
    """

    def __init__(self, message: str, *, final: bool):
        super().__init__(message)
        self.final = final


class LockUnavailable(RefreshError):
    """The shared cache holding the refresh lock is down: the app, not the EHR, cannot refresh now."""

    def __init__(self, message: str):
        super().__init__(message, final=False)


def _lock_key(launch: Launch) -> str:
    return f"smart:refresh-lock:{launch.pk}"


def _failure_key(launch: Launch) -> str:
    return f"smart:refresh-failed:{launch.pk}"


def _failed_recently(launch: Launch) -> bool:
    return cachepolicy.get(cachepolicy.REFRESH_BACKOFF, _failure_key(launch)) is not None


def _remember_failure(launch: Launch) -> None:
    """For a short while, requests of this launch do not each wait on an EHR that just failed."""
    backoff = settings.SMART_REFRESH_BACKOFF_SECONDS
    cachepolicy.set(cachepolicy.REFRESH_BACKOFF, _failure_key(launch), 1, backoff)


def _reload(launch: Launch) -> Launch:
    fresh = Launch.objects.select_related("ehr").filter(pk=launch.pk).first()
    if fresh is None:
        raise RefreshError("the launch is gone", final=True)
    return fresh


def _refreshed_since(fresh: Launch, seen: Launch) -> bool:
    return fresh.access_token != seen.access_token or fresh.refresh_token != seen.refresh_token


def _claim_key(launch: Launch) -> str:
    digest = hashlib.sha256(launch.refresh_token.encode()).hexdigest()[:32]
    return f"smart:refresh-sent:{launch.pk}:{digest}"


class _InFlight(Exception):
    """This refresh token is being sent by another request right now."""


def _claim(launch: Launch, owner: str) -> str:
    """Claim the launch's refresh token for one send; `_InFlight` if another send holds it."""
    key = _claim_key(launch)
    # Fails closed like the lock (cachepolicy.CacheUnavailable): an unclaimed send could be a second.
    if not cachepolicy.add(cachepolicy.REFRESH_LOCK, key, owner, claim_seconds()):
        raise _InFlight
    return key


def _config(launch: Launch) -> discovery.SmartConfig:
    """Discovery happens before the lock is taken, so the lock only spans the token call."""
    try:
        return discovery.discover(launch.ehr)
    except OAuthError as exc:
        logger.info("refresh impossible for ehr=%s: %s", launch.ehr_id, type(exc).__name__)
        raise RefreshError(str(exc), final=False) from exc


def _do_refresh(launch: Launch, config: discovery.SmartConfig, owner: str) -> Launch:
    """One refresh call, storing the new tokens on the launch (caller holds the lock)."""
    if not launch.refresh_token:
        raise RefreshError("no refresh token", final=True)
    claim = _claim(launch, owner)
    try:
        result = token_endpoint.refresh(
            launch.ehr, config, refresh_token=launch.refresh_token, granted_scope=launch.scope
        )
    except OAuthError as exc:
        # The call is over without new tokens: a later refresh may send this token again; a
        # concurrent one could not.
        cachepolicy.delete(cachepolicy.REFRESH_LOCK, claim)
        final = isinstance(exc, TokenError) and bool(exc.error) and exc.error not in TRANSIENT_OAUTH_ERRORS
        logger.info(
            "refresh failed for launch of ehr=%s: %s (%s)",
            launch.ehr_id,
            type(exc).__name__,
            "final" if final else "transient",
        )
        raise RefreshError(str(exc), final=final) from exc
    except BaseException:
        cachepolicy.delete(cachepolicy.REFRESH_LOCK, claim)
        raise
    if result.patient and launch.patient_id and result.patient != launch.patient_id:
        # Never the wrong patient: a refresh may not switch the launch's patient.
        logger.warning("refresh for ehr=%s returned a different patient; launch dropped", launch.ehr_id)
        raise RefreshError("the EHR changed the patient on refresh", final=True)
    launch.access_token = result.access_token
    if result.refresh_token:
        launch.refresh_token = result.refresh_token
    launch.expires_at = timezone.now() + timedelta(seconds=result.expires_in)
    launch.scope = result.scope or launch.scope
    launch.refreshed_at = timezone.now()
    _store(launch)
    # Stored: the token the claim guarded is spent (rotated) or still ours; either way it is done.
    cachepolicy.delete(cachepolicy.REFRESH_LOCK, claim)
    return launch


def _store(launch: Launch) -> None:
    """Save the new tokens, retrying through a short database outage.

    The EHR has already answered: with a rotating grant the old refresh token is spent, so losing
    this write would lose the launch. Until it is stored, the claim on the old token stays (it
    expires on its own), so no other request sends that spent token again.
    """
    fields = ("access_token", "refresh_token", "expires_at", "scope", "refreshed_at")
    values = {name: getattr(launch, name) for name in fields}
    for pause in (*STORE_ATTEMPTS, None):
        try:
            # update(), not save(update_fields): a launch deleted meanwhile (sign-out in another
            # tab) is then a clean "gone", not a DatabaseError.
            if not Launch.objects.filter(pk=launch.pk).update(**values):
                raise RefreshError("the launch is gone", final=True)
            return
        except DatabaseError as exc:
            if pause is None:
                reason = type(exc).__name__
                logger.error("new tokens for ehr=%s could not be stored: %s", launch.ehr_id, reason)
                raise RefreshError("the new tokens could not be stored", final=False) from exc
            close_old_connections()  # a broken connection is replaced on the next try
            time.sleep(pause)


# The lock fails closed (cachepolicy.REFRESH_LOCK): without it a refresh could run twice and send
# one refresh token twice, which a rotating EHR answers by ending the grant.
def _acquire(key: str, owner: str) -> bool:
    return cachepolicy.add(cachepolicy.REFRESH_LOCK, key, owner, lock_seconds())


def _holder(key: str) -> str | None:
    return cachepolicy.get(cachepolicy.REFRESH_LOCK, key)


def _refresh(launch: Launch, *, force: bool) -> Launch:
    if not launch.refresh_token:
        # Nothing can renew this grant: no discovery, no lock, no backoff entry to write.
        raise RefreshError("no refresh token", final=True)
    if _failed_recently(launch):
        raise RefreshError("the EHR failed a refresh moments ago", final=False)
    try:
        config = _config(launch)
        try:
            return _refresh_locked(launch, config, force=force)
        except cachepolicy.CacheUnavailable as exc:
            raise LockUnavailable("the refresh lock is unavailable") from exc
    except RefreshError as exc:
        if not exc.final:
            _remember_failure(launch)
        raise


def _busy(key: str, launch: Launch) -> bool:
    """Another request holds the lock, or is sending this launch's refresh token."""
    if _holder(key) is not None:
        return True
    return bool(launch.refresh_token) and _holder(_claim_key(launch)) is not None


def _refresh_locked(launch: Launch, config: discovery.SmartConfig, *, force: bool) -> Launch:
    key = _lock_key(launch)
    owner = secrets.token_hex(8)
    for _attempt in range(2):
        if _acquire(key, owner):
            try:
                # Re-read right before sending: a refresh stored meanwhile (even by a holder whose
                # lock expired) is used, and its rotated-away refresh token never sent again.
                fresh = _reload(launch)
                if _refreshed_since(fresh, launch):
                    return fresh  # another process refreshed between our read and the lock
                if not force and not fresh.expires_within(settings.SMART_REFRESH_SKEW_SECONDS):
                    return fresh
                return _do_refresh(fresh, config, owner)
            except _InFlight:
                logger.warning("refresh lock expired under a live refresh (ehr=%s); waiting", launch.ehr_id)
            finally:
                cachepolicy.release(cachepolicy.REFRESH_LOCK, key, owner)
        if not force and not launch.expires_within(0):
            return launch  # another request is refreshing; this token still works meanwhile
        deadline = time.monotonic() + wait_seconds()
        while _busy(key, launch) and time.monotonic() < deadline:
            if _failed_recently(launch):
                raise RefreshError("a concurrent refresh failed", final=False)
            time.sleep(POLL_SECONDS)
        fresh = _reload(launch)
        if _refreshed_since(fresh, launch):
            return fresh
        if _failed_recently(launch):
            raise RefreshError("a concurrent refresh failed", final=False)
        if _busy(key, launch):
            raise RefreshError("timed out waiting for a concurrent refresh", final=False)
        # The other refresh did not store a token (it failed or did nothing): try once ourselves.
    raise RefreshError("could not acquire the refresh lock", final=False)


def refresh_access_token(launch: Launch) -> Launch:
    """Refresh `launch` if its token expires within the skew; return the up-to-date launch."""
    return _refresh(launch, force=False)


def force_refresh(launch: Launch) -> Launch:
    """Refresh now (after a FHIR 401), unless another process refreshed it meanwhile."""
    return _refresh(launch, force=True)
