"""What the authorization server remembers beyond django-oauth-toolkit's own tables."""

from django.db import models
from django.utils import timezone


class UsedAuthorizationCode(models.Model):
    """An authorization code that was spent, so that a second use is recognised (agent.oauth_validator).

    DOT deletes the Grant when its code is exchanged, and with it any trace of what the code bought. This row
    outlives the Grant for a bounded time and names what the exchange issued, so a replay can revoke it. Only
    checksums are kept: the code and the access token are credentials. A code spent by a failed PKCE check has
    no tokens.
    """

    code_checksum = models.CharField(max_length=64, unique=True)  # SHA-256 of the code; unique: the once-only lock
    token_family = models.UUIDField(null=True, blank=True)  # DOT's refresh-token family: every rotation shares it
    access_token_checksum = models.CharField(max_length=64, blank=True)  # for a response with no refresh token
    used_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["used_at"], name="usedcode_used_at")]  # the purge

    def __str__(self):
        return f"Used authorization code #{self.pk}"
