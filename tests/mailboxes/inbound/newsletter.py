"""A marketing newsletter built the way ESPs build them, for the HTML-to-text tests and measurements.

Table layout 600 px wide, inline styles on every cell, a media-query <style> block, Outlook
conditional comments, a preheader padded with &zwnj;&nbsp;&#847;, a mobile-only block hidden on
desktop, 121 links through ~400-character click-tracking URLs (the hero image and the product
images repeat the URL of the button or name beside them), images with and without alt text, spacer
images and a 1×1 open-tracking pixel. About 139 KB, the size of the real one in the issue.
"""

import random
from email.message import EmailMessage

PREHEADER = "Summer Sale: 30% off everything until Sunday, plus free shipping over $50."
LINK_COUNT = 121
_CELL = ("font-family:'Helvetica Neue',Helvetica,Arial,sans-serif;font-size:14px;line-height:21px;color:#333333;"
         "mso-line-height-rule:exactly;")
_LINK = "color:#1a5fb4;text-decoration:none;font-weight:bold;mso-line-height-rule:exactly;"
_BLURBS = ["Breathable washed linen, relaxed fit.", "Quick-dry nylon with a 7-inch inseam.",
           "Heavy cotton canvas, holds a week of groceries.", "Soft, odour-resistant merino for hot days.",
           "Wide brim, packable, UPF 50+.", "Vegetable-tanned leather that moulds to your feet."]
_STYLE_NOTES = [
    "Linen is the fabric of summer for a reason: it breathes, it dries fast and it looks better with every wash. "
    "This season we cut our camp shirts a little longer and a little looser, in five colours taken from the coast.",
    "Heading for the hills? Our trail shorts weigh less than a paperback, pack into their own pocket and have a "
    "zipped pocket for your keys. Pair them with the merino tee and you can walk all day without a second thought.",
    "Every order ships in recycled packaging, and returns are free for 60 days. If something does not fit, send it "
    "back from any post office with the label in the box; your refund arrives within five working days.",
]
_LEGAL = ("Prices and offers valid from June 12 to June 16, 2026, while stocks last, in the US only. The 30% discount "
          "applies to full-price and sale items; it cannot be combined with other promotions or used on gift cards. "
          "Free shipping applies to orders over $50 after discounts, to the contiguous US. SUNNY5 is valid for members "
          "once per account. Northwind Outfitters reserves the right to end the promotion at any time.")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


class _Links:
    """Hands out distinct tracking URLs of about 400 characters (deterministic)."""

    def __init__(self, seed):
        self.random, self.count = random.Random(seed), 0

    def tracked(self, target):
        self.count += 1
        token = "".join(self.random.choice(_ALPHABET) for _ in range(250))
        slug = "".join(c if c.isalnum() else "-" for c in target.lower())
        return (f"https://click.e.northwind-outfitters.example/ls/click?upn={token}"
                f"&amp;u={self.count:04d}&amp;utm_source=newsletter&amp;utm_medium=email"
                f"&amp;utm_campaign=summer_sale_2026&amp;utm_content={slug}")


def _button(url, label):
    return (f'<table role="presentation" border="0" cellpadding="0" cellspacing="0" align="center" '
            f'style="border-collapse:separate;mso-table-lspace:0pt;mso-table-rspace:0pt;"><tr>'
            f'<td align="center" bgcolor="#e01b24" style="border-radius:4px;mso-padding-alt:12px 28px;{_CELL}">'
            f'<!--[if mso]><v:roundrect xmlns:v="urn:schemas-microsoft-com:vml" href="{url}" '
            f'style="height:44px;v-text-anchor:middle;width:220px;" arcsize="10%" fillcolor="#e01b24">'
            f'<center style="color:#ffffff;">{label}</center></v:roundrect><![endif]-->'
            f'<a href="{url}" target="_blank" style="display:inline-block;padding:12px 28px;color:#ffffff;'
            f'background-color:#e01b24;border-radius:4px;{_LINK}color:#ffffff;">{label}</a></td></tr></table>')


def _spacer(height):
    return (f'<tr><td height="{height}" style="height:{height}px;font-size:0;line-height:0;mso-line-height-rule:exactly;">'
            f'<img src="https://img.northwind-outfitters.example/spacer.gif" width="1" height="{height}" '
            f'style="display:block;border:0;" alt="">&nbsp;</td></tr>')


def _product(links, number):
    url = links.tracked(f"product-{number}")  # the image and the name: one URL, two anchors
    buy = links.tracked(f"buy-{number}")
    name = ["Linen Camp Shirt", "Ultra&shy;light Trail Shorts", "Canvas Tote", "Merino Tee", "Straw Sun Hat",
            "Leather Sandals"][number % 6] + f" No.&nbsp;{number}"
    # Most product images have no alt text: in the old text each left a line holding only "(url)".
    alt = f' alt="{name} in sand"' if number % 5 == 0 else ' alt=""'
    return (f'<td class="column" width="33%" valign="top" style="padding:0 6px 18px 6px;{_CELL}">'
            f'<table role="presentation" width="100%" border="0" cellpadding="0" cellspacing="0" '
            f'style="mso-table-lspace:0pt;mso-table-rspace:0pt;"><tr><td align="center" style="{_CELL}">'
            f'<a href="{url}" target="_blank" style="{_LINK}"><img src="https://img.northwind-outfitters.example/p/'
            f'{number:04d}-600x600.jpg" width="180" height="180"{alt} style="display:block;border:0;outline:none;'
            f'width:100%;max-width:180px;height:auto;"></a></td></tr>'
            f'<tr><td align="center" style="padding-top:10px;{_CELL}"><a href="{url}" target="_blank" '
            f'style="{_LINK}">{name}</a></td></tr>'
            f'<tr><td align="center" style="padding-top:4px;{_CELL}"><span style="text-decoration:line-through;'
            f'color:#888888;">${40 + number}.00</span>&nbsp;&nbsp;<strong style="color:#e01b24;">'
            f'${(40 + number) * 7 // 10}.00</strong></td></tr>'
            f'<tr><td align="center" style="padding-top:4px;font-size:12px;{_CELL}">{_BLURBS[number % 6]}</td></tr>'
            f'<tr><td align="center" style="padding-top:8px;{_CELL}"><a href="{buy}" target="_blank" '
            f'style="{_LINK}">Buy now&nbsp;&rsaquo;</a></td></tr></table></td>')


def _style_block(rule_count):
    rules = ["body{margin:0!important;padding:0!important;-webkit-text-size-adjust:100%!important;}",
             "table,td{mso-table-lspace:0pt!important;mso-table-rspace:0pt!important;}",
             "img{-ms-interpolation-mode:bicubic;border:0;outline:none;text-decoration:none;}",
             "a[x-apple-data-detectors]{color:inherit!important;text-decoration:none!important;}"]
    for index in range(rule_count):
        rules.append(f"@media only screen and (max-width:{620 - index % 40}px){{.column-{index}{{width:100%!important;"
                     f"display:block!important;max-width:100%!important;}}.pad-{index}{{padding:0 {index % 24}px"
                     f"!important;}}.hide-{index}{{display:none!important;max-height:0!important;}}}}")
    return "<style type=\"text/css\">\n" + "\n".join(rules) + "\n</style>"


def newsletter_html(*, target_bytes=139_000, seed=7):
    """The newsletter's HTML; its <style> block is sized so the whole is about `target_bytes` long."""
    links = _Links(seed)
    body = []
    add = body.append
    padding = "&zwnj;&nbsp;&#847; " * 90 + "&nbsp;" * 60 + "&#8199;&#65279;&#847; " * 40
    add('<body style="margin:0;padding:0;background-color:#f4f4f4;" bgcolor="#f4f4f4">')
    add(f'<div style="display:none;font-size:1px;color:#f4f4f4;line-height:1px;max-height:0px;max-width:0px;'
        f'opacity:0;overflow:hidden;mso-hide:all;">{PREHEADER} {padding}</div>')
    add('<center style="width:100%;background-color:#f4f4f4;"><!--[if mso | IE]><table role="presentation" '
        'border="0" cellpadding="0" cellspacing="0" width="600" align="center"><tr><td><![endif]-->')
    add(f'<table role="presentation" class="wrapper" width="600" border="0" cellpadding="0" cellspacing="0" '
        f'align="center" style="max-width:600px;margin:0 auto;background-color:#ffffff;{_CELL}">')
    add(f'<tr><td align="right" style="padding:8px 16px;font-size:11px;{_CELL}">Having trouble reading this? '
        f'<a href="{links.tracked("view-online")}" target="_blank" style="{_LINK}">View this email in your browser</a></td></tr>')
    add(f'<tr><td align="center" style="padding:20px;{_CELL}"><a href="{links.tracked("home")}" target="_blank">'
        f'<img src="https://img.northwind-outfitters.example/logo@2x.png" width="200" height="48" '
        f'alt="Northwind Outfitters" style="display:block;border:0;"></a></td></tr>')
    nav = "".join(f'<td align="center" style="padding:10px 4px;{_CELL}"><a href="{links.tracked(item)}" '
                  f'target="_blank" style="{_LINK}">{item}</a></td>'
                  for item in ("Women", "Men", "Kids", "Shoes", "Accessories", "Sale"))
    add(f'<tr><td style="border-top:1px solid #eeeeee;border-bottom:1px solid #eeeeee;{_CELL}"><table '
        f'role="presentation" width="100%" border="0" cellpadding="0" cellspacing="0"><tr>{nav}</tr></table></td></tr>')
    sale = links.tracked("sale")  # the hero image and the button
    add(f'<tr><td style="{_CELL}"><a href="{sale}" target="_blank"><img src="https://img.northwind-outfitters.'
        f'example/hero-summer-1200x800.jpg" width="600" height="400" alt="" style="display:block;border:0;'
        f'width:100%;height:auto;"></a></td></tr>')
    add(_spacer(24))
    add(f'<tr><td style="padding:0 32px;{_CELL}"><h1 style="margin:0 0 12px 0;font-size:28px;line-height:34px;'
        f'color:#111111;text-align:center;">Summer&nbsp;Sale: 30% off every&shy;thing</h1>'
        f'<p style="margin:0 0 12px 0;{_CELL}">The sun is out and so is our biggest sale of the season. From linen '
        f'shirts to trail shorts, every item in the store is 30% off until Sunday at midnight, and orders over $50 '
        f'ship free.</p><p style="margin:0 0 18px 0;{_CELL}">Members get early access to new arrivals and an extra '
        f'5% off with code <strong>SUNNY5</strong> at checkout.</p></td></tr>')
    add(f'<tr><td align="center" style="padding:0 0 24px 0;{_CELL}">{_button(sale, "Shop the sale")}</td></tr>')
    # Shown only on phones (a media query reveals it); desktop clients and the text leave it out.
    add(f'<tr><td class="mobile-only" style="display:none;max-height:0;overflow:hidden;mso-hide:all;{_CELL}">'
        f'Tap any product to shop the sale in the app.</td></tr>')
    add(f'<tr><td style="padding:0 26px;{_CELL}"><h2 style="margin:0 0 16px 0;font-size:20px;text-align:center;">'
        f'Picked for you</h2></td></tr>')
    for row in range(10):
        cells = "".join(_product(links, row * 3 + column + 1) for column in range(3))
        add(f'<tr><td style="padding:0 20px;{_CELL}"><table role="presentation" width="100%" border="0" '
            f'cellpadding="0" cellspacing="0"><tr>{cells}</tr></table></td></tr>')
    notes = "".join(f'<p style="margin:0 0 12px 0;{_CELL}">{note}</p>' for note in _STYLE_NOTES)
    add(f'<tr><td style="padding:8px 32px 16px 32px;{_CELL}"><h2 style="margin:0 0 12px 0;font-size:20px;">'
        f'Style notes</h2>{notes}</td></tr>')
    for index, (alt, title, text) in enumerate([
            ("New in: the Coastline collection", "The Coastline collection", "Breezy layers in sand and sea-glass."),
            ("Gift cards from $25", "Gift cards", "The present that always fits.")]):
        banner, more = links.tracked(f"banner-{index}"), links.tracked(f"banner-more-{index}")
        add(f'<tr><td style="padding:12px 20px;{_CELL}"><a href="{banner}" target="_blank"><img src="https://img.'
            f'northwind-outfitters.example/banner-{index}.jpg" width="560" height="200" alt="{alt}" '
            f'style="display:block;border:0;width:100%;height:auto;"></a><h3 style="margin:12px 0 4px 0;font-size:'
            f'18px;">{title}</h3><p style="margin:0;{_CELL}">{text} <a href="{more}" target="_blank" '
            f'style="{_LINK}">Discover more</a></p></td></tr>')
    add(_spacer(16))
    social = "".join(f'<td style="padding:0 6px;{_CELL}"><a href="{links.tracked(name)}" target="_blank"><img '
                     f'src="https://img.northwind-outfitters.example/icons/{name.lower()}-48.png" width="24" '
                     f'height="24" alt="{name}" style="display:block;border:0;"></a></td>'
                     for name in ("Facebook", "Instagram", "X", "Pinterest", "YouTube"))
    add(f'<tr><td align="center" style="padding:8px 0;{_CELL}"><table role="presentation" border="0" '
        f'cellpadding="0" cellspacing="0" align="center"><tr>{social}</tr></table></td></tr>')
    badges = "".join(f'<td style="padding:0 6px;"><a href="{links.tracked(store)}" target="_blank"><img '
                     f'src="https://img.northwind-outfitters.example/badges/{index}.png" width="120" height="40" '
                     f'alt="{store}" style="display:block;border:0;"></a></td>'
                     for index, store in enumerate(("Download on the App Store", "Get it on Google Play")))
    add(f'<tr><td align="center" style="padding:8px 0;{_CELL}"><p style="margin:0 0 8px 0;">Shop faster in '
        f'our app. <a href="{links.tracked("app")}" target="_blank" style="{_LINK}">Download the app</a></p>'
        f'<table role="presentation" border="0" cellpadding="0" cellspacing="0" align="center"><tr>{badges}'
        f'</tr></table></td></tr>')
    footer_links = " &nbsp;|&nbsp; ".join(
        f'<a href="{links.tracked(item)}" target="_blank" style="color:#888888;text-decoration:underline;">{item}</a>'
        for item in ("Privacy policy", "Terms of use", "Store locator", "Help center"))
    add(f'<tr><td align="center" style="padding:24px 32px;background-color:#fafafa;font-size:12px;{_CELL}">'
        f'<p style="margin:0 0 8px 0;">{footer_links}</p>'
        f'<p style="margin:0 0 8px 0;">Questions? <a href="mailto:help@northwind-outfitters.example?subject=Order'
        f'%20question" style="color:#888888;">Contact us</a> or visit <a href="https://www.northwind-outfitters'
        f'.example/" target="_blank" style="color:#888888;">https://www.northwind-outfitters.example/</a></p>'
        f'<p style="margin:0 0 8px 0;">{_LEGAL}</p>'
        f'<p style="margin:0 0 8px 0;">Northwind Outfitters, 1200 Harbor Way, Suite 400, Portland, OR 97209</p>'
        f'<p style="margin:0;">You are receiving this because you signed up at northwind-outfitters.example.<br>'
        f'<a href="{links.tracked("preferences")}" target="_blank" style="color:#888888;">Update preferences</a>'
        f' &middot; <a href="{links.tracked("unsubscribe")}" target="_blank" style="color:#888888;">Unsubscribe</a>'
        f' &middot; <a href="{links.tracked("forward")}" target="_blank" style="color:#888888;">Forward to a friend'
        f'</a></p></td></tr>')
    add('</table><!--[if mso | IE]></td></tr></table><![endif]--></center>')
    add('<img src="https://open.e.northwind-outfitters.example/o/eJwFwUEKgCAQAMC-ex9hT2KoLWQTQXRy1f8_0VRCSpjJ'
        'ZDEwdBRZx.gif" width="1" height="1" alt="" style="display:block;height:1px;width:1px;border:0;">')
    add('</body></html>')
    body_html = "".join(body)
    head = ('<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/'
            'xhtml1-transitional.dtd"><html xmlns="http://www.w3.org/1999/xhtml" xmlns:v="urn:schemas-microsoft-'
            'com:vml" xmlns:o="urn:schemas-microsoft-com:office:office"><head><meta http-equiv="Content-Type" '
            'content="text/html; charset=UTF-8"><meta name="viewport" content="width=device-width, initial-scale=1.0">'
            '<meta name="x-apple-disable-message-reformatting"><title>Summer Sale: 30% off everything</title>'
            '<!--[if mso]><xml><o:OfficeDocumentSettings><o:AllowPNG/><o:PixelsPerInch>96</o:PixelsPerInch>'
            '</o:OfficeDocumentSettings></xml><![endif]-->')
    rules = 0
    while len(head) + len(_style_block(rules)) + len("</head>") + len(body_html) < target_bytes:
        rules += 1
    return head + _style_block(rules) + "</head>" + body_html


def newsletter_message(*, html=None) -> bytes:
    """The newsletter as an HTML-only message (quoted-printable, as ESPs send it)."""
    message = EmailMessage()
    message["From"] = "Northwind Outfitters <news@e.northwind-outfitters.example>"
    message["To"] = "owner@example.org"
    message["Subject"] = "Summer Sale: 30% off everything"
    message.set_content(html or newsletter_html(), subtype="html", cte="quoted-printable")
    return message.as_bytes()
