"""``credhelper init --ona``: what an Entra admin registers so an Ona environment may federate.

Read from the environment's own token (``ona idp token``, decoded locally, never printed). Entra
matches ``sub`` exactly, without wildcards, and holds at most 20 federated credentials per app,
so we also say how many subjects the project will need: Ona's V3 ``sub`` is built from the claims
the organisation chose (``organization_id:<org>:project_id:<project>`` by default); a ``sub`` that
names an environment or a person changes with each one and cannot be registered in advance.
"""

from typing import List, Optional

from ..auth.providers import EXCHANGE_AUDIENCE, fetch_assertion
from ..errors import AuthFailed, ConfigError
from .init import federated_credential_hint

ENTRA_LIMIT = 20
# V3 sub parts that stay the same for every environment of a project
_STABLE = {"organization_id", "project_id", "repository", "repository_id", "repo", "org"}


def sub_parts(subject: str) -> List[str]:
    """The claim names in a V3 ``key:value:key:value`` subject (empty for other shapes)."""
    words = subject.split(":")
    if len(words) < 2 or len(words) % 2:
        return []
    return words[0::2]


def subject_warnings(subject: str, projects: Optional[int] = None) -> List[str]:
    """Why one federated credential per project may not be enough (Entra's 20 per app)."""
    warnings = []
    varying = [name for name in sub_parts(subject) if name not in _STABLE]
    if varying:
        warnings.append(
            f"credhelper: warning: this subject includes {', '.join(varying)}, which changes "
            "with each environment or person: every one would need its own federated "
            f"credential, and Entra allows {ENTRA_LIMIT} per app. Ask your Ona admin to build "
            "the V3 sub from organization_id and project_id only.")
    if projects is not None and projects > ENTRA_LIMIT:
        warnings.append(
            f"credhelper: warning: {projects} projects need {projects} subjects, more than the "
            f"{ENTRA_LIMIT} federated credentials Entra allows per app: split them over "
            f"{-(-projects // ENTRA_LIMIT)} app registrations (or user-assigned managed "
            "identities), or use a sub without project_id.")
    return warnings


def ona_advice(client_id: str, projects: Optional[int] = None,
               audience: str = EXCHANGE_AUDIENCE) -> List[str]:
    """Lines for a person: issuer, subject, audience to register, and any warning."""
    try:
        hint = federated_credential_hint(fetch_assertion("ona", audience))
    except (AuthFailed, ConfigError) as exc:
        return [f"credhelper: could not read this environment's identity ({exc.message});",
                "  in an Ona environment, `credhelper init --ona` prints the issuer and subject "
                "to register."]
    lines = [
        f"credhelper: ask an Entra admin to add a federated credential to app {client_id}:",
        f"  issuer:   {hint['issuer']}",
        f"  subject:  {hint['subject']}",
        f"  audience: {hint['audience']}",
    ]
    if projects is not None and projects > 1:
        lines.append(f"  (one such credential per project: {projects} subjects in all)")
    return lines + subject_warnings(hint["subject"], projects)
