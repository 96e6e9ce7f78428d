"""The dashboard's mailbox and mail pages: mailbox and group pages (mailboxes), reading mail (mail), writing it
(compose), attachment downloads (attachments), the forwarding confirmation (forwarding), the live-update
websocket (live), and what they share (sidebar, content). Their URLs are in mailboxes/urls.py."""
