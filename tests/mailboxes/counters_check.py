from mailboxes.store.counters import mailbox_counters_recompute


def counters_exact(*mailboxes):
    """Assert each mailbox's live counters equal a recount of its stored mail; return the last (messages, unread, storage)."""
    for mailbox in mailboxes:
        mailbox.refresh_from_db()
        live = (mailbox.message_count, mailbox.unread_count, mailbox.storage_used)
        mailbox_counters_recompute(mailbox=mailbox)
        assert live == (mailbox.message_count, mailbox.unread_count, mailbox.storage_used)
    return live
