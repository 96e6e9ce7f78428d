"""What an account's life tells the apps above it, so that accounts imports none of them.

Each signal is sent inside the transaction of the change it announces; receivers do their part in that same
transaction (an error rolls the whole change back), exactly as if the code were called in place.
"""

from django.dispatch import Signal

# A new account exists (sign-up, or a user provisioned without one). kwargs: account, email, full_name.
# mailboxes gives it its first mailbox on the shared domain.
account_created = Signal()

# An account is being closed: nothing may reach it or act for it from here on. kwargs: account.
# mailboxes suspends its mailboxes.
account_closing = Signal()

# A closed account is about to be deleted: receivers delete what a database cascade would leave behind
# (files first). Sent before the rows go, outside any transaction. kwargs: account.
account_deleting = Signal()

# A personal token was issued (accounts.tokens.token_issue), inside its transaction. kwargs: access_token,
# account, mailbox_ids (the mailboxes it is limited to; None for all). mailboxes keeps the limit.
token_issued = Signal()

# What an account's tokens may do changed: its plan (accounts.services.account_set_plan) or a token's grant
# (revoked). kwargs: account. The agent surface tells the account's open MCP sessions to list their tools again.
account_grants_changed = Signal()
