"""An inbox of everyday mail, for the size tests and bench/agent_sizes.py: what a page of list or search
results costs an agent with subjects, senders and snippets of realistic length.

Order confirmations, shipping notices, newsletters (HTML only), invoices, calendar replies, support
tickets and replies quoting earlier mail: subjects from 20 to 100 characters (60 on average), display
names and addresses of real length, bodies whose first 240 characters are all words (full snippets).
"""

import random
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from datetime import datetime, timedelta, timezone

_SENDERS = [
    ("Northwind Outfitters", "news@e.northwind-outfitters.example"),
    ("Acme Billing Department", "billing-noreply@accounts.acme-corporation.example"),
    ("Parcel Tracking", "tracking-updates@notifications.fastparcel-logistics.example"),
    ("Dr. Margaret Okonkwo-Fitzgerald", "margaret.okonkwo-fitzgerald@university-hospital.example"),
    ("GitHub", "notifications@github.example"),
    ("Support Team at Contoso Cloud", "support+ticket-48213@helpdesk.contoso-cloud.example"),
    ("Jean-Baptiste Delacroix", "jb.delacroix@atelier-delacroix.example"),
    ("Calendar", "calendar-notification@workspace.example"),
]
_SUBJECTS = [
    "Your order #NW-2026-0612-88412 has shipped: Linen Camp Shirt, Canvas Tote and 2 more items",
    "Invoice INV-2026-06-00417 for June 2026",
    "Delivery update: your parcel is out for delivery and arrives today by 8pm",
    "Re: Follow-up on the clinical trial enrolment criteria and the revised consent forms for phase II",
    "[qmailing/qmailing] Fix the HTML-to-text conversion of adjacent inline links (PR #1842)",
    "Re: [Ticket #48213] Intermittent 502 errors since Tuesday's deploy",
    "Devis pour la rénovation de la cuisine",
    "Invitation: Quarterly planning review @ Thu 18 Jun 2026 14:00 - 15:30 (CEST) (owner@example.org)",
    "Summer Sale: 30% off everything until Sunday",
    "Accepted: Design review for the onboarding flow",
    "Re: Lunch on Friday?",
    "Your statement is ready",
]
_PARAGRAPHS = [
    "Thanks for getting back to me so quickly. I have gone through the documents you sent on Monday and most "
    "of it looks right, but there are two points I would like to settle before we sign anything: the delivery "
    "dates in the second schedule, and who pays for the extra inspection if the first one fails.",
    "We are writing to let you know that your statement for the period ending June 30 is now available in your "
    "account. The amount due is $1,284.50, and it will be charged to the card ending in 4242 on the due date "
    "unless you choose another payment method before then.",
    "Your parcel left our regional hub this morning and is now with the local courier. You can follow it on the "
    "map until it arrives; if nobody is home, the courier will leave it with a neighbour or at the pick-up point "
    "nearest to your address, and you will get a card with the details.",
    "The summer collection is here: breathable linen, quick-dry trail shorts and the canvas tote everyone asked "
    "for. Members get early access and an extra 5% off with code SUNNY5 at checkout, and every order over $50 "
    "ships free to the contiguous US until Sunday at midnight.",
]


def inbox_messages(count, *, seed=11, start=None):
    """`count` raw messages (bytes), oldest first, one a minute from `start` (default: a day ago)."""
    rng = random.Random(seed)
    start = start or datetime.now(timezone.utc) - timedelta(days=1)
    messages = []
    for index in range(count):
        name, address = _SENDERS[index % len(_SENDERS)]
        subject = _SUBJECTS[index % len(_SUBJECTS)]
        body = "\n\n".join(rng.sample(_PARAGRAPHS, 3))
        message = EmailMessage()
        message["From"] = f"{name} <{address}>"
        message["To"] = "Owner <owner@example.org>"
        message["Subject"] = subject
        message["Date"] = format_datetime(start + timedelta(minutes=index))
        message["Message-ID"] = make_msgid(domain="inbox.example")
        if index % 4 == 3:  # a reply quoting the message before it
            body += "\n\nOn Monday, June 15, 2026, Owner <owner@example.org> wrote:\n> " + \
                "\n> ".join(_PARAGRAPHS[index % len(_PARAGRAPHS)].split(". "))
        if index % 5 == 0:  # an HTML-only newsletter
            message.set_content("".join(f"<p>{paragraph}</p>" for paragraph in body.split("\n\n")), subtype="html")
        else:
            message.set_content(body)
        messages.append(message.as_bytes())
    return messages
