"""Who may manage webhooks (the alerts page shows each user their own alerts only)."""

from __future__ import annotations

from bizdevops.permissions import Rule
from bizdevops.roles import is_admin

can_manage_webhooks = Rule(lambda user: is_admin(user), "Only admins manage webhooks.")
