"""What the MCP server costs an agent's context, in characters (≈ tokens: characters / 4), over the real endpoint.

    DATABASE_URL=postgres://…/<empty database> python bench/agent_sizes.py [--sdist-dir D]
    python bench/agent_sizes.py --small     # the real-world corpus of tests/mailboxes/fixtures only (bench/smoke)
    (without DATABASE_URL: SQLite in a temporary folder)

It migrates the empty database and creates one account per plan, with tokens of several scope sets; into a
PRO_MAX mailbox it ingests the project's newsletter fixture (tests/mailboxes/inbound/newsletter.py, 139 KB of
HTML), a real-world corpus (bench/corpus_delivery.py's: the sample messages of four public sdists fetched
with pip, or with --small the messages under tests/mailboxes/fixtures), an inbox of everyday mail
(tests/mailboxes/inbound/inbox.py) and a conversation of eight messages. Then it serves qmailing.asgi with
daphne, as run_all does, and talks to /mcp as a client (raw JSON-RPC over HTTP, protocol 2026-07-28), so the
figures are what a client receives, whatever tools/list shows a given token:

- tools/list: characters of compact JSON, ≈ tokens and tool count, per plan (every scope) and per scope set;
- qmailing_get_email with its defaults: the text block (the result's text content) and the whole result
  (the JSON-RPC result: text and structured content), on the newsletter fixture and on the corpus (its
  message with the most HTML, and the largest text block of all);
- a page of qmailing_list_emails, one of qmailing_search_emails and qmailing_get_thread, with defaults.

Exits 1 when a get_email newsletter text block passes 10,000 characters (the fixture's or the corpus's message
with the most HTML) or a page of 20 list or search results passes 6,000 (issue 20's budgets).
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
# `python bench/agent_sizes.py` puts bench/ first on sys.path, where bench/mcp.py would shadow the SDK's package.
sys.path[:] = [str(BASE_DIR)] + [p for p in sys.path if Path(p or ".").resolve() != BASE_DIR / "bench"]

TEXT_BLOCK_MAX = 10_000
PAGE_TEXT_MAX = 6_000
PLANS = ("FREE", "PLUS", "PRO", "PRO_MAX")
SCOPE_SETS = {  # name -> scopes, on a PRO account
    "read mail": "mailbox:read email:read",
    "drafts (a person sends)": "mailbox:read email:read email:write",
    "mail, sending too": "mailbox:read email:read email:write email:send",
    "domains": "domain:read domain:write mailbox:read mailbox:write",
    "webhooks": "webhook:manage",
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="the corpus under tests/mailboxes/fixtures only (no download)")
    parser.add_argument("--sdist-dir", help="bench/corpus_delivery.py's sdists, already downloaded into this folder")
    return parser.parse_args()


def configure_environment():
    """This process's and the server's environment, before Django reads its settings; the scratch folder."""
    scratch = tempfile.mkdtemp(prefix="qmailing-bench-sizes.")
    if not os.environ.get("DATABASE_URL"):
        os.environ["QMAILING_VAR_DIR"] = scratch  # a fresh SQLite file, shared with the server
    os.environ.setdefault("QMAILING_VAR_DIR", scratch)
    os.environ["DJANGO_SETTINGS_MODULE"] = "qmailing.settings"
    os.environ["DJANGO_DEBUG"] = "false"
    os.environ["QMAILING_TOKEN_REQUESTS_PER_MINUTE"] = "1000000000"
    os.environ["QMAILING_RATELIMIT_KEY_PREFIX"] = f"qmailing:bench-sizes:{os.getpid()}:"
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BASE_DIR), os.environ.get("PYTHONPATH", "")]))
    return scratch


def conversation(count=8):
    """A conversation of `count` messages, each replying to the one before and quoting it."""
    messages, previous, references = [], None, []
    text = "Could we move the design review to Thursday afternoon? The mock-ups need one more pass."
    for index in range(count):
        message = EmailMessage()
        message["From"] = ("Ada Lovelace <ada@analytical.example>" if index % 2 else
                           "Charles Babbage <charles@difference.example>")
        message["To"] = "owner@example.org"
        message["Subject"] = ("Re: " if index else "") + "Design review for the onboarding flow"
        message["Message-ID"] = message_id = make_msgid(domain="thread.example")
        if previous:
            message["In-Reply-To"], message["References"] = previous, " ".join(references)
        body = f"Reply {index}: that works for me; I will bring the revised copy and the numbers from the pilot."
        message.set_content(body + "\n\nOn the previous day, someone wrote:\n> " + text.replace("\n", "\n> ") + "\n")
        text = body
        previous = message_id
        references.append(message_id)
        messages.append(message.as_bytes())
    return messages


def create_fixture(args):
    """Migrate the empty database; accounts, tokens and mail. Returns (tokens by row label, ids by figure)."""
    from django.core.management import call_command
    from django.db import connection

    existing = connection.introspection.table_names()
    if existing:
        sys.exit(f"The database is not empty ({len(existing)} tables): the benchmark starts from a fresh one "
                 "(bench/smoke creates one).")
    call_command("migrate", verbosity=0)

    from accounts.scopes import SCOPES
    from accounts.services import account_set_plan, account_signup
    from accounts.tokens import token_issue
    from bench import corpus_delivery
    from mailboxes.inbound.ingest import email_ingest
    from tests.mailboxes.inbound.inbox import inbox_messages
    from tests.mailboxes.inbound.newsletter import newsletter_message

    tokens = {}
    accounts = {}
    for plan in PLANS:
        user = account_signup(email=f"{plan.lower()}@bench.example", password="sizes horse battery 42")
        accounts[plan] = (account_set_plan(account=user.account, plan_code=plan), user)
        tokens[f"{plan}, every scope"] = token_issue(account=accounts[plan][0], user=user, client="Bench",
                                                     scopes=" ".join(SCOPES))[0]
    for name, scopes in SCOPE_SETS.items():
        account, user = accounts["PRO"]
        tokens[f"PRO, {name}"] = token_issue(account=account, user=user, client="Bench", scopes=scopes)[0]

    account, user = accounts["PRO_MAX"]
    mailbox = account.mailboxes.get()
    ids = {"newsletter": email_ingest(mailbox=mailbox, raw=newsletter_message()).id}
    corpus = []
    for source, name, data in corpus_delivery.corpus(small=args.small, sdist_dir=args.sdist_dir):
        email = email_ingest(mailbox=mailbox, raw=data)
        corpus.append((f"{source}: {name}", email.id, len(email.html or "")))
    ids["corpus"] = corpus
    for raw in conversation():
        email = email_ingest(mailbox=mailbox, raw=raw)
    ids["thread"] = email.thread_id
    for raw in inbox_messages(30):  # last, so a page of the inbox is everyday mail
        email_ingest(mailbox=mailbox, raw=raw)
    ids["mailbox"] = mailbox.id
    return tokens, ids


class Client:
    """Raw JSON-RPC to /mcp on the 2026-07-28 protocol (no session), as a real client sends it."""

    def __init__(self, port, token):
        from bench.mcp import MODERN, McpClient

        self.mcp = McpClient(port, "/mcp", token, MODERN)
        self.version = MODERN
        self.number = 0

    def request(self, method, params, name=None):
        from bench.mcp import MODERN_META

        self.number += 1
        headers = {"MCP-Protocol-Version": self.version, "Mcp-Method": method, **({"Mcp-Name": name} if name else {})}
        status, body, _ = self.mcp.post({"jsonrpc": "2.0", "id": self.number, "method": method,
                                         "params": {**params, "_meta": MODERN_META}}, headers)
        text = body.decode()
        if not text.lstrip().startswith("{"):  # one SSE event
            text = next(line[5:] for line in text.splitlines() if line.startswith("data:") and '"id"' in line)
        reply = json.loads(text)
        if status != 200 or "result" not in reply:
            raise RuntimeError(f"{method} answered {status}: {text[:500]}")
        return reply["result"]

    def list_tools(self):
        tools, cursor = [], None
        while True:
            result = self.request("tools/list", {"cursor": cursor} if cursor else {})
            tools += result["tools"]
            cursor = result.get("nextCursor")
            if not cursor:
                return tools

    def call(self, tool, arguments):
        """(text block, whole result) characters and the result of one tools/call."""
        result = self.request("tools/call", {"name": tool, "arguments": arguments}, name=tool)
        if result.get("isError"):
            raise RuntimeError(f"{tool} {arguments} failed: {result['content'][0]['text'][:500]}")
        text = "".join(block.get("text", "") for block in result["content"])
        return len(text), len(compact(result)), result

    def close(self):
        self.mcp.close(end_session=False)


def compact(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def row(label, chars, extra=""):
    print(f"  {label:<58}{chars:>9,} chars  ≈{chars // 4:>7,} tokens  {extra}")


def main():
    args = parse_args()
    scratch = configure_environment()
    import django

    django.setup()
    from django.db import connection

    from bench.api import Server

    server = None
    failures = []
    try:
        tokens, ids = create_fixture(args)
        connection.close()
        server = Server(dict(os.environ), app="qmailing.asgi:application")
        print(f"server: daphne on 127.0.0.1:{server.port} serving qmailing.asgi; database "
              f"{connection.vendor}; client: raw JSON-RPC on 2026-07-28 (figures: compact JSON characters, "
              "≈ tokens = characters / 4)")

        print("\ntools/list (the whole result, as compact JSON):")
        for label, token in tokens.items():
            client = Client(server.port, token)
            tools = client.list_tools()
            client.close()
            row(label, len(compact({"tools": tools})), f"{len(tools)} tools")

        client = Client(server.port, tokens["PRO_MAX, every scope"])
        print("\nqmailing_get_email with defaults (text block = the text content; whole = text + structured content):")
        figures = []
        text, whole, result = client.call("qmailing_get_email", {"email_id": str(ids["newsletter"])})
        body = result["structuredContent"]
        row("newsletter fixture (139 KB HTML): text block", text,
            f"whole {whole:,}; text {len(body['text']):,} of {body['text_length']:,}, "
            f"{len(body['links'])} links, {body['links_omitted']} left out")
        figures.append(("the newsletter fixture", text, whole))
        sizes = []
        for name, email_id, html in ids["corpus"]:
            text, whole, _ = client.call("qmailing_get_email", {"email_id": str(email_id)})
            sizes.append((text, whole, html, name))
        if sizes:
            heaviest = max(sizes, key=lambda size: size[2])
            largest = max(sizes)
            row(f"corpus, most HTML ({heaviest[2]:,} chars): text block", heaviest[0],
                f"whole {heaviest[1]:,}; {heaviest[3]}")
            row("corpus, largest text block", largest[0], f"whole {largest[1]:,}; {largest[3]}")
            row(f"corpus, median text block of {len(sizes)} messages", int(statistics.median(s[0] for s in sizes)))
            figures.append((f"the corpus's message with the most HTML ({heaviest[3]})", heaviest[0], heaviest[1]))
        for what, text, whole in figures:
            if text > TEXT_BLOCK_MAX or whole > 2 * TEXT_BLOCK_MAX:
                failures.append(f"get_email on {what}: text block {text:,} (at most {TEXT_BLOCK_MAX:,}), "
                                f"whole {whole:,} (at most {2 * TEXT_BLOCK_MAX:,})")

        print("\npages and a conversation, with defaults (text block; whole result):")
        for label, tool, arguments, budget in [
                ("qmailing_list_emails (INBOX)", "qmailing_list_emails", {"mailbox_id": str(ids["mailbox"])}, PAGE_TEXT_MAX),
                ("qmailing_search_emails", "qmailing_search_emails", {"query": "order OR invoice OR review OR sale"},
                 PAGE_TEXT_MAX),
                ("qmailing_get_thread (8 messages)", "qmailing_get_thread", {"thread_id": str(ids["thread"])}, None)]:
            text, whole, result = client.call(tool, arguments)
            structured = result["structuredContent"]
            count = len(structured.get("items", structured.get("messages", [])))
            row(label, text, f"whole {whole:,}; {count} items")
            if budget and count >= 20 and text > budget:
                failures.append(f"{tool}: a page of {count} is {text:,} characters of text (at most {budget:,})")
        client.close()
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    if failures:
        print("\nover budget:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print(f"\nwithin budget: get_email newsletters at most {TEXT_BLOCK_MAX:,} characters of text block, pages of 20 at "
          f"most {PAGE_TEXT_MAX:,}")


if __name__ == "__main__":
    main()
