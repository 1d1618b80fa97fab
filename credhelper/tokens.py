"""Token slots: one per (account, scopes), served from memory, refreshed ahead of time.

The hot path (``get`` on a fresh slot) reads two attributes and takes no lock. Everything else
goes through one manager lock, held only for bookkeeping, never across a call to a source.
Acquisition is single flight: whoever finds a slot without a fresh token starts one ``_Flight``
and everyone else arriving meanwhile waits on it and gets its result (or its error).
"""

import hmac
import logging
import random
import threading
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from . import schedule
from .auth.base import Source, Token
from .clock import Clock
from .errors import AuthFailed, ConfigError, CredhelperError, NotSignedIn, Throttled

log = logging.getLogger(__name__)

Key = Tuple[str, Tuple[str, ...]]
OnToken = Callable[[str, Tuple[str, ...], Token], None]



class Kept(NamedTuple):
    """A slot's token as it outlives the daemon (``kept.py``): the token and its planned refresh."""

    account: str
    scopes: Tuple[str, ...]
    token: Token
    planned: float


IDLE_AFTER = 8 * 3600.0  # a slot nobody asked for in this long stops refreshing
_FORBIDDEN = ("\r", "\n", "\0")


class _Flight:
    """One acquisition in progress; waiters block on ``done``."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.token: Optional[Token] = None
        self.error: Optional[CredhelperError] = None


class _Slot:
    def __init__(self, key: Key, now: float) -> None:
        self.key = key
        self.token: Optional[Token] = None
        self.next_refresh: Optional[float] = None  # None: nothing scheduled (cold, parked, gone)
        self.planned = 0.0  # the refresh time computed when the held token arrived
        self.retry_at = 0.0
        self.failures = 0
        self.error: Optional[CredhelperError] = None
        self.flight: Optional[_Flight] = None
        self.last_used = now
        self.pinned = False
        self.alive = True


def _copy_error(err: CredhelperError, retry_after: Optional[float] = None) -> CredhelperError:
    # Each waiter raises its own instance: one exception object raised in many threads would
    # have its traceback rewritten under the others' feet.
    # Everything the error carries travels (NotSignedIn's account lets a front-end sign in).
    try:
        fresh = type(err)(err.message)
    except TypeError:
        return AuthFailed(err.message)
    fresh.__dict__.update(vars(err))
    if retry_after is not None:
        fresh.retry_after = retry_after
    return fresh


class TokenManager:
    """Holds every token slot; ``get`` on the hot path, ``run_due`` from the refresher."""

    def __init__(self, sources: Mapping[str, Source], clock: Clock,
                 rng: Optional[random.Random] = None, on_token: Optional[OnToken] = None,
                 idle_after: float = IDLE_AFTER,
                 on_change: Optional[Callable[[], None]] = None) -> None:
        self._sources: Dict[str, Source] = dict(sources)
        self._on_change = on_change  # a token was dropped (invalidate, logout, reload): re-keep
        self._clock = clock
        self._rng = rng or random.Random()
        self._on_token = on_token
        self._idle_after = idle_after
        self._slots: Dict[Key, _Slot] = {}
        self._lock = threading.Lock()
        self.wakeup = threading.Event()  # set whenever the schedule changes; the Refresher waits on it

    # -- hot path -----------------------------------------------------------------------------

    def get(self, account: str, scopes: Tuple[str, ...]) -> Token:
        """A token with life left: from memory when fresh, else one shared acquisition."""
        token = self.peek(account, scopes)
        if token is not None:
            return token
        return self._get_slow((account, tuple(scopes)), self._clock.now())

    def peek(self, account: str, scopes: Tuple[str, ...]) -> Optional[Token]:
        """The token ``get`` would return without I/O, waiting or a lock; None if there is none."""
        slot = self._slots.get((account, tuple(scopes)))
        if slot is None:
            return None
        now = self._clock.now()
        token = slot.token
        if schedule.fresh(token, now) and slot.next_refresh is not None:
            slot.last_used = now  # a racy write of a float is fine: it only keeps a slot warm
            return token
        return None

    def _get_slow(self, key: Key, now: float) -> Token:
        with self._lock:
            if key[0] not in self._sources:
                raise ConfigError(f"account {key[0]!r} is not configured")
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot(key, now)
            slot.last_used = now
            token = slot.token
            if schedule.fresh(token, now):
                self._arm(slot, now)  # was parked after a long idle spell
                return token  # type: ignore[return-value]
            flight = slot.flight
            leader = flight is None
            if leader and now < slot.retry_at:
                # backing off after a failure: the held token is better than asking again
                if schedule.usable(token, now):
                    return token  # type: ignore[return-value]
                if isinstance(slot.error, Throttled):
                    raise _copy_error(slot.error, retry_after=slot.retry_at - now)
            if leader:
                flight = slot.flight = _Flight()
        assert flight is not None
        if leader:
            self._acquire(slot, flight)
        flight.done.wait()
        if flight.token is not None:
            return flight.token
        held = slot.token
        if schedule.usable(held, self._clock.now()):
            return held  # type: ignore[return-value]
        assert flight.error is not None
        raise _copy_error(flight.error)

    # -- acquisition --------------------------------------------------------------------------

    def _acquire(self, slot: _Slot, flight: _Flight) -> None:
        account, scopes = slot.key
        issued_at = self._clock.now()
        token: Optional[Token] = None
        error: Optional[CredhelperError] = None
        source = self._sources.get(account)
        try:
            if source is None:
                raise ConfigError(f"account {account!r} is not configured")
            token = self._checked(source.acquire(scopes, issued_at), issued_at, account)
        except CredhelperError as exc:
            error = exc
        except Exception as exc:  # a source bug must not kill the daemon; its text may hold secrets
            log.error("%s: credential source raised %s", account, type(exc).__name__)
            error = AuthFailed(f"{account}: credential source failed ({type(exc).__name__})")
        now = self._clock.now()
        with self._lock:
            slot.flight = None
            if token is not None:
                first = slot.token is None  # a slot starting: spread its first refresh
                slot.token, slot.failures, slot.error, slot.retry_at = token, 0, None, 0.0
                slot.next_refresh = slot.planned = schedule.next_refresh(
                    issued_at, token.expires_on, token.refresh_on, self._rng.random(), first)
            elif isinstance(error, NotSignedIn):
                # Waiting for a person is not a failure to retry: asking again cannot help until
                # they sign in (login drops the account's slots and pins npm's again). The slot
                # rests; a get still asks at once, which costs no network.
                if not isinstance(slot.error, NotSignedIn):
                    log.info("%s: waiting for sign-in (credhelper login %s)", account, account)
                slot.error, slot.failures, slot.retry_at, slot.next_refresh = error, 0, 0.0, None
            else:
                assert error is not None
                slot.failures += 1
                slot.error = error
                retry_after = error.retry_after if isinstance(error, Throttled) else None
                cover = slot.token.expires_on - now if slot.token is not None else None
                slot.retry_at = now + schedule.backoff(slot.failures, self._rng.random(),
                                                       retry_after, cover)
                # a cold slot retries on the next get; a warm or pinned one in the background
                keep = slot.pinned or slot.token is not None
                slot.next_refresh = slot.retry_at if keep else None
                log.warning("%s: refresh failed (%s, attempt %d); next try in %.0f s",
                            account, error.code, slot.failures, slot.retry_at - now)
            alive = slot.alive
        flight.token, flight.error = token, error
        flight.done.set()
        self.wakeup.set()
        if token is not None and alive and self._on_token is not None:
            try:
                self._on_token(account, scopes, token)
            except Exception as exc:  # a sink problem must not turn a good token into an error
                log.error("%s: on_token callback raised %s", account, type(exc).__name__)

    @staticmethod
    def _checked(token: Token, now: float, account: str) -> Token:
        text = token.access_token
        if not isinstance(text, str) or not text or any(c in text for c in _FORBIDDEN):
            raise AuthFailed(f"{account}: identity provider returned a malformed token")
        if not schedule.usable(token, now):
            raise AuthFailed(f"{account}: identity provider returned an already expiring token")
        return token

    def _arm(self, slot: _Slot, now: float) -> None:
        if slot.next_refresh is None and slot.token is not None:
            slot.next_refresh = max(now, slot.planned)
            self.wakeup.set()

    # -- background refresh -------------------------------------------------------------------

    def run_due(self, wait: bool = True) -> Optional[float]:
        """Refresh every warm slot due at ``clock.now()``; return the next due time (or None).

        Refreshes run in parallel threads. With ``wait`` (tests, simple callers) this returns once
        they are all done; without it returns at once, and ``wakeup`` is set as each finishes.
        """
        now = self._clock.now()
        started: List[Tuple[_Slot, _Flight]] = []
        with self._lock:
            for slot in self._slots.values():
                if slot.flight is not None or slot.next_refresh is None or slot.next_refresh > now:
                    continue
                if not slot.pinned and now - slot.last_used > self._idle_after:
                    slot.next_refresh = None  # nobody uses it: let it expire quietly
                    continue
                slot.flight = _Flight()
                started.append((slot, slot.flight))
        threads = [threading.Thread(target=self._acquire, args=pair, daemon=True,
                                    name=f"refresh-{pair[0].key[0]}") for pair in started]
        for thread in threads:
            thread.start()
        if wait:
            for thread in threads:
                thread.join()
        return self.next_due()

    def next_due(self) -> Optional[float]:
        """The earliest scheduled refresh among slots not being refreshed right now."""
        with self._lock:
            times = [s.next_refresh for s in self._slots.values()
                     if s.next_refresh is not None and s.flight is None]
        return min(times) if times else None

    # -- management ---------------------------------------------------------------------------

    def invalidate(self, account: str, scopes: Tuple[str, ...], access_token: str) -> bool:
        """Drop the held token if it is ``access_token``; the next ``get`` acquires anew."""
        with self._lock:
            slot = self._slots.get((account, tuple(scopes)))
            held = slot.token if slot is not None else None
            if slot is None or held is None or not hmac.compare_digest(
                    held.access_token.encode("utf-8", "surrogatepass"),
                    access_token.encode("utf-8", "surrogatepass")):
                return False
            slot.token = None
            slot.next_refresh = self._clock.now() if slot.pinned else None
        self.wakeup.set()
        self._changed()
        return True

    def pin(self, account: str, scopes: Tuple[str, ...]) -> None:
        """Keep this slot warm forever (npm registries have nobody calling ``get``)."""
        key = (account, tuple(scopes))
        now = self._clock.now()
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot(key, now)
            slot.pinned = True
            if slot.next_refresh is None:
                slot.next_refresh = now if slot.token is None else max(now, slot.retry_at)
        self.wakeup.set()

    def source(self, account: str) -> Optional[Source]:
        """The source serving ``account``, if any."""
        return self._sources.get(account)

    def drop_account(self, account: str) -> int:
        """Forget every slot of ``account`` (logout, fresh sign-in); returns how many."""
        with self._lock:
            dropped = self._drop(lambda key: key[0] == account)
        self._changed()
        return dropped

    def replace_sources(self, sources: Mapping[str, Source]) -> None:
        """Adopt a reloaded config: keep slots whose account kept an equivalent source."""
        with self._lock:
            old, self._sources = self._sources, dict(sources)
            dropped = self._drop(lambda key: not _same_source(old.get(key[0]),
                                                               self._sources.get(key[0])))
        self.wakeup.set()
        if dropped:
            self._changed()

    def kept(self) -> List[Kept]:
        """Every held token still usable, with its planned refresh: what a restart should keep."""
        now = self._clock.now()
        with self._lock:
            return [Kept(slot.key[0], slot.key[1], slot.token, slot.planned)
                    for slot in self._slots.values()
                    if slot.alive and slot.token is not None and schedule.usable(slot.token, now)]

    def restore(self, kept: Sequence[Kept]) -> int:
        """Adopt tokens a previous daemon kept; each keeps its planned refresh. Returns how many.

        The refresh time was spread by jitter when the token arrived: keeping it means a
        fleet-wide restart asks the identity provider nothing until those times come round.
        """
        now = self._clock.now()
        adopted = 0
        with self._lock:
            for entry in kept:
                key = (entry.account, tuple(entry.scopes))
                if (entry.account not in self._sources or key in self._slots
                        or not schedule.usable(entry.token, now)):
                    continue
                slot = self._slots[key] = _Slot(key, now)
                slot.token, slot.planned = entry.token, entry.planned
                slot.next_refresh = max(now, entry.planned)  # past due: refreshed on the next pass
                adopted += 1
        if adopted:
            self.wakeup.set()
        return adopted

    def _changed(self) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change()
        except Exception as exc:  # keeping is best effort: the token in memory is what counts
            log.error("on_change callback raised %s", type(exc).__name__)

    def _drop(self, doomed: Callable[[Key], bool]) -> int:
        keys = [key for key in self._slots if doomed(key)]
        for key in keys:
            slot = self._slots.pop(key)
            slot.alive, slot.token, slot.next_refresh = False, None, None
        return len(keys)

    def status(self) -> List[dict]:
        """One dict per slot for ``credhelper status``; never contains a token."""
        now = self._clock.now()
        with self._lock:
            return [_describe(slot, now) for slot in self._slots.values()]


def _same_source(old: Optional[Source], new: Optional[Source]) -> bool:
    if old is None or new is None:
        return False
    if old is new:
        return True
    old_account = getattr(old, "account", None)
    return old_account is not None and old_account == getattr(new, "account", None)


def _describe(slot: _Slot, now: float) -> dict:
    token = slot.token
    if slot.flight is not None:
        state = "refreshing"
    elif token is None:
        state = "empty"
    elif not schedule.usable(token, now):
        state = "expired"
    elif slot.error is not None:
        state = "degraded"
    else:
        state = "fresh"
    return {
        "account": slot.key[0], "scopes": list(slot.key[1]), "state": state,
        "expires_on": token.expires_on if token is not None else None,
        "next_refresh": slot.next_refresh, "failures": slot.failures,
        "reason": slot.error.message if slot.error is not None else None,
        "error": slot.error.code if slot.error is not None else None,
        "pinned": slot.pinned, "last_used": slot.last_used,
    }
