"""The scopes a token can carry (docs/agents/tokens-and-oauth.md, Scopes), declared once.

django-oauth-toolkit's SCOPES setting, the operation registry, the permission-matrix test, the
consent page and RFC 9728 metadata all read this mapping. Imports nothing from Django.
"""

MAILBOX_READ = "mailbox:read"
MAILBOX_WRITE = "mailbox:write"
DOMAIN_READ = "domain:read"
DOMAIN_WRITE = "domain:write"
EMAIL_READ = "email:read"
EMAIL_WRITE = "email:write"
EMAIL_SEND = "email:send"
WEBHOOK_MANAGE = "webhook:manage"

# scope -> what it allows, in plain words (shown on consent pages and in token lists).
SCOPES = {
    MAILBOX_READ: "List and inspect your mailboxes",
    MAILBOX_WRITE: "Create mailboxes on your verified domains",
    DOMAIN_READ: "List your domains and read their DNS checklists",
    DOMAIN_WRITE: "Add domains and run their DNS verification",
    EMAIL_READ: "Read, list and search your mail, threads and attachments, and follow its events",
    EMAIL_WRITE: "Organise your mail: read and starred flags, folders, trash and restore, drafts",
    EMAIL_SEND: "Send mail from your mailboxes",
    WEBHOOK_MANAGE: "List, register and revoke webhook endpoints",
}

# What an OAuth client gets when it asks for no scope at all: the least, read-only.
DEFAULT_SCOPES = [MAILBOX_READ]

# The scopes whose calls act in the world rather than on your mail: scope -> what that means, in plain words
# (the consent page marks them and leaves them unticked until a person ticks them).
ACTS_IN_THE_WORLD = {
    EMAIL_SEND: "Mail goes out to real people in your name, and a sent message cannot be recalled.",
    DOMAIN_WRITE: "Adds domains to your account and verifies them, after which mail can go out from their addresses.",
    WEBHOOK_MANAGE: "Makes QMailing send your mail's events to web addresses outside QMailing.",
}

READ_ONLY = [MAILBOX_READ, DOMAIN_READ, EMAIL_READ]
# Sets of scopes a person picks in one click (the consent page): key -> (label, scopes). A preset only ever
# ticks scopes the app asked for.
PRESETS = {
    "read": ("Read only", READ_ONLY),
    "drafts": ("Drafts only (a person sends)", READ_ONLY + [EMAIL_WRITE]),
    "everything": ("Everything", list(SCOPES)),
}


def unknown_scopes(scopes):
    """The names in `scopes` that are not scopes, in the order given."""
    return [scope for scope in scopes if scope not in SCOPES]
