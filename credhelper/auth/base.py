"""The one seam every credential source sits behind: ``Source.acquire`` returns a ``Token``."""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Protocol, Tuple

if TYPE_CHECKING:  # keeps auth.base free of config's import cost at run time
    from ..config import Account


@dataclass(frozen=True)
class Token:
    """An access token and when it stops (and should stop) being used; the secret stays out of repr."""

    access_token: str = field(repr=False)
    expires_on: float
    refresh_on: Optional[float] = None


class Source(Protocol):
    """One credential source per account; ``TokenManager`` owns caching and scheduling."""

    account: "Account"

    def acquire(self, scopes: Tuple[str, ...], now: float) -> Token:
        """Ask the identity provider for a new token, bypassing any cache.

        ``expires_on``/``refresh_on`` are ``now`` plus the provider's ``expires_in``/``refresh_in``
        so the caller's clock is the only clock. Raises ``NotSignedIn``, ``AuthFailed``,
        ``Throttled`` (with ``retry_after``) or ``IdpUnavailable``.
        """
        ...
