"""Human-readable ``credhelper status`` from the daemon's status reply (which holds no token)."""

import time
from typing import Any, Dict, List


REFRESH_TOKEN_IDLE = 90 * 24 * 3600


def _when(epoch: Any, now: float) -> str:
    if not isinstance(epoch, (int, float)):
        return "-"
    delta = int(epoch - now)
    clock = time.strftime("%H:%M:%S", time.localtime(epoch))
    if delta >= 0:
        return f"{clock} (in {delta // 60}m{delta % 60:02d}s)"
    return f"{clock} ({-delta // 60}m{-delta % 60:02d}s ago)"


def render_status(reply: Dict[str, Any], now: float) -> str:
    """Format the status reply as a few aligned lines."""
    lines: List[str] = [
        f"daemon   pid {reply.get('pid')}, version {reply.get('version')}, up {reply.get('uptime')}s",
        f"config   {reply.get('config')}",
        f"socket   {reply.get('socket')}",
        f"keys     {reply.get('key_storage')}",
    ]
    if reply.get("config_error"):
        lines.append(f"WARNING  config not reloaded: {reply['config_error']}")
    if reply.get("cache_problem"):
        lines.append(f"WARNING  token cache: {reply['cache_problem']}")
    lines.append("accounts")
    for account in reply.get("accounts", []):
        line = f"  {account['name']:<16} {account['flow']}"
        if account["flow"] == "device_code":
            who = account.get("signed_in")
            if who:
                line += f"  signed in as {who.get('username')}"
                last = who.get("last_used")
                if isinstance(last, (int, float)):
                    # Entra keeps a refresh token alive for 90 days of inactivity, unless revoked
                    # (policy may shorten it); each refresh slides the window.
                    holds = time.strftime("%Y-%m-%d", time.localtime(last + REFRESH_TOKEN_IDLE))
                    line += f", holds until about {holds} unless revoked"
            else:
                line += "  not signed in: run credhelper login " + account["name"]
        lines.append(line)
        if account.get("problem"):
            # the daemon's last word from this account's identity provider, never asked anew
            label = "unreachable" if account.get("unreachable") else "failing"
            lines.append(f"  {'':<16} {label}: {account['problem']}")
    lines.append("tokens")
    slots = reply.get("slots", [])
    if not slots:
        lines.append("  (none yet: a slot starts on first use)")
    for slot in slots:
        scopes = " ".join(slot.get("scopes", []))
        lines.append(f"  {slot.get('account'):<16} {slot.get('state'):<10} {scopes}")
        lines.append(f"  {'':<16} expires {_when(slot.get('expires_on'), now)}, "
                     f"next refresh {_when(slot.get('next_refresh'), now)}")
        if slot.get("reason"):
            lines.append(f"  {'':<16} last error: {slot['reason']}")
    held = reply.get("registry_tokens") or {}
    if reply.get("registries"):
        lines.append("registries (docker)")
        for host in reply["registries"]:
            mine = [v for k, v in held.items() if k.split(" ", 1)[0] == host]
            when = _when(mine[0].get("expires_on"), now) if mine else "none yet (first pull)"
            lines.append(f"  {host:<32} refresh token expires {when}")
    azure = reply.get("azure")
    if azure:
        lines.append(f"azure    {azure.get('endpoint')} as {azure.get('account')}: "
                     + " ".join(azure.get("scopes", [])))
        lines.append(f"         shells source {azure.get('env_file')}")
    return "\n".join(lines)
