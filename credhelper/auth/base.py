"""What every credential source hands back, and the one method it must have."""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Protocol, Tuple

if TYPE_CHECKING:
    from ..config import Account


@dataclass(frozen=True)
class Token:
    """An access token and the times (on the caller's clock) it expires and should be refreshed."""

    access_token: str = field(repr=False)
    expires_on: float
    refresh_on: Optional[float]


class Source(Protocol):
    """One credential source per account; ``acquire`` always asks the identity provider."""

    account: "Account"

    def acquire(self, scopes: Tuple[str, ...], now: float) -> Token:
        """A new token for ``scopes``; raises NotSignedIn, AuthFailed, Throttled or IdpUnavailable."""
        ...
