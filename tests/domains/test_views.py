"""The domain page: the DNS checklist as a table with copyable values, the zone file, the last check."""

import re
from html import unescape

import pytest
from django.urls import reverse

from domains.selectors import TXT_CHUNK, dns_record_zone_line, domain_records, domain_zone_file
from domains.services import domain_add, domain_verify


@pytest.fixture
def signed_in(client, owner):
    client.force_login(owner.users.get())
    return client


def test_checklist_shows_each_record_with_a_copyable_one_line_value(signed_in, owner):
    domain = domain_add(account=owner, name="brand.example")
    page = signed_in.get(reverse("domains:detail", args=[domain.id])).content.decode()
    for header in ("Host", "Type", "Value", "Found", "State", "How to fix"):
        assert page.count(f'<th scope="row">{header}</th>') == 5  # one small table per record
    for record in domain_records(domain=domain):
        # The value sits whole in one copy-text cell (styled white-space: nowrap, scrolled), with its own button.
        cell = re.search(rf'<code class="copy-text" id="value-{record.kind}"[^>]*>(.*?)</code>', page, re.S)
        assert cell and unescape(cell.group(1)) == record.expected
        assert f'data-copy="value-{record.kind}"' in page and f'data-copy="host-{record.kind}"' in page
    assert "navigator.clipboard" in page and "selectNodeContents" in page  # the copy script and its fallback
    assert "white-space: nowrap" in page and "overflow-x: auto" in page
    assert "Not checked yet" in page and "Last checked" not in page


def test_dkim_value_is_one_unbroken_string_in_the_page(signed_in, owner):
    domain = domain_add(account=owner, name="brand.example")
    page = signed_in.get(reverse("domains:detail", args=[domain.id])).content.decode()
    assert f"p={domain.dkim_public_key}" in page  # not split by <wbr>, spaces or line breaks


def test_zone_file_holds_every_record_as_a_bind_line_with_a_copy_button(signed_in, owner, settings):
    domain = domain_add(account=owner, name="brand.example")
    zone = domain_zone_file(domain=domain)
    lines = [line for line in zone.splitlines() if not line.startswith(";")]
    assert len(lines) == len(domain_records(domain=domain)) == 5
    assert f"brand.example.\t3600\tIN\tMX\t10 {settings.QMAILING_MX_HOST}." in lines
    assert any(line.startswith(f"_qmailing.brand.example.\t3600\tIN\tTXT\t\"qmailing-verification={domain.ownership_token}\"")
               for line in lines)
    page = signed_in.get(reverse("domains:detail", args=[domain.id])).content.decode()
    block = re.search(r'<pre tabindex="0" class="copy-text mono" id="zone-file">(.*?)</pre>', page, re.S)
    assert block and unescape(block.group(1)) == zone
    assert 'data-copy="zone-file"' in page


def test_long_txt_values_are_split_into_255_byte_strings_that_join_back():
    class Record:
        host, type = "qm1._domainkey.brand.example", "TXT"
        expected = "v=DKIM1; k=rsa; p=" + "A" * 600 + '"\\'

    line = dns_record_zone_line(record=Record)
    strings = re.findall(r'"((?:[^"\\]|\\.)*)"', line)
    assert len(strings) == 3 and all(len(s.replace("\\\\", "\\").replace('\\"', '"')) <= TXT_CHUNK for s in strings)
    joined = "".join(s.replace('\\"', '"').replace("\\\\", "\\") for s in strings)
    assert joined == Record.expected
    assert line.startswith("qm1._domainkey.brand.example.\t3600\tIN\tTXT\t")


def test_checked_domain_shows_found_values_states_fixes_and_when(signed_in, owner, dns_server):
    domain = domain_add(account=owner, name="brand.example")
    dns_server.add("_qmailing.brand.example", "TXT", "qmailing-verification=someone-else")
    domain = domain_verify(domain=domain)
    page = signed_in.get(reverse("domains:detail", args=[domain.id])).content.decode()
    assert "qmailing-verification=someone-else" in page  # the value found
    assert "Mismatch" in page and "Missing" in page
    assert re.search(r'Last checked <time datetime="[^"]+" data-when="ago" title="[^"]+">just now</time>', page)
    for record in domain_records(domain=domain):
        if record.fix:
            assert unescape(record.fix) in unescape(page)


# --- Check now, last checked -------------------------------------------------------------------------------

def test_check_now_posts_checks_dns_and_shows_when_it_last_ran(signed_in, owner, dns_server):
    domain = domain_add(account=owner, name="brand.example")
    url = reverse("domains:detail", args=[domain.id])
    page = signed_in.get(url).content.decode()
    form = re.search(r'<form class="row check-form" id="check-form" method="post" action="([^"]+)">(.*?)</form>',
                     page, re.S)
    assert form and form.group(1) == reverse("domains:verify", args=[domain.id])
    assert "csrfmiddlewaretoken" in form.group(2) and ">Check now</button>" in form.group(2)
    assert 'role="status"' in form.group(2)  # where the script says "Checking DNS…" while the POST runs
    assert "Checking DNS…" in page and "button.disabled = true" in page
    assert signed_in.get(reverse("domains:verify", args=[domain.id])).status_code == 405  # a change is a POST only

    dns_server.publish_checklist(domain)
    response = signed_in.post(reverse("domains:verify", args=[domain.id]))
    assert response.status_code == 302 and response["Location"] == url
    domain.refresh_from_db()
    assert domain.last_checked_at is not None and domain.is_verified
    page = signed_in.get(url).content.decode()
    stamp = re.search(r'Last checked <time datetime="([^"]+)" data-when="ago" title="([^"]+)">([^<]+)</time>', page)
    assert stamp and stamp.group(3) == "just now"
    assert stamp.group(1) == domain.last_checked_at.isoformat()
    assert stamp.group(2) == domain.last_checked_at.strftime("%a %-d %b %Y, %H:%M UTC")  # the exact time on hover
    assert "brand.example is verified: you can create mailboxes on it." in page
    assert page.count('data-when="ago"') == 1 + 5  # the domain's check and each record's


def test_last_checked_reads_minutes_ago_with_the_exact_time_in_the_title(signed_in, owner, dns_server):
    from datetime import timedelta

    from django.utils import timezone

    from domains.models import Domain

    domain = domain_verify(domain=domain_add(account=owner, name="brand.example"))
    earlier = timezone.now() - timedelta(minutes=3, seconds=5)
    Domain.objects.filter(pk=domain.pk).update(last_checked_at=earlier)
    page = signed_in.get(reverse("domains:detail", args=[domain.id])).content.decode()
    assert f'title="{earlier.strftime("%a %-d %b %Y, %H:%M UTC")}">3 minutes ago</time>' in page
    assert "Last checked <time" in page


def test_a_failed_check_names_the_missing_required_records(signed_in, owner, dns_server):
    domain = domain_add(account=owner, name="brand.example")
    dns_server.publish_checklist(domain)
    dns_server.clear(f"qm1._domainkey.{domain.name}")
    page = signed_in.post(reverse("domains:verify", args=[domain.id]), follow=True).content.decode()
    assert "DNS checked for brand.example: DKIM is not in place yet." in unescape(page)
    dns_server.clear(domain.name)  # MX (and SPF) gone as well
    page = signed_in.post(reverse("domains:verify", args=[domain.id]), follow=True).content.decode()
    assert "DNS checked for brand.example: MX and DKIM are not in place yet." in unescape(page)
    dkim = re.search(r'<section class="card dns-record" id="record-dkim".*?</section>', page, re.S).group(0)
    assert "Missing" in dkim and re.search(r'<td class="fix">\s*\S', dkim)  # a how-to-fix line


# --- the domain's mailboxes --------------------------------------------------------------------------------

def test_domain_page_lists_its_mailboxes_with_links_to_forwarding_and_groups(signed_in, owner, outsider,
                                                                          verified_domain):
    from mailboxes.services import group_create, mailbox_create

    sales = mailbox_create(account=owner, domain=verified_domain, local_part="sales", display_name="Sales team")
    hello = mailbox_create(account=owner, domain=verified_domain, local_part="hello")
    group = group_create(account=owner, name="Front desk", members=[sales])
    shared = owner.mailboxes.get(domain__is_shared=True)  # on the shared domain, not this one
    page = signed_in.get(reverse("domains:detail", args=[verified_domain.id])).content.decode()
    section = page[page.index('<h2 id="mailboxes">'):page.index("<h2>Zone file</h2>")]
    assert "Mailboxes on brand.example" in section
    for mailbox in (sales, hello):
        assert f"{mailbox.local_part}@brand.example" in section
        assert reverse("mailboxes:detail", args=[mailbox.id]) in section  # forwarding lives on the mailbox page
    assert "Sales team" in section and " for forwarding from sales@brand.example</span></a>" in section
    assert reverse("mailboxes:group", args=[group.id]) in section and "Front desk" in section
    assert reverse("mailboxes:groups") in section
    assert shared.address not in section and str(shared.id) not in section
    assert f'href="{reverse("mailboxes:create")}?domain={verified_domain.id}">Create mailbox</a>' in section


def test_domain_without_mailboxes_says_what_to_do(signed_in, owner, verified_domain):
    page = signed_in.get(reverse("domains:detail", args=[verified_domain.id])).content.decode()
    assert "No mailboxes on brand.example yet. Create the first one" in page
    pending = domain_add(account=owner, name="other.example")
    page = signed_in.get(reverse("domains:detail", args=[pending.id])).content.decode()
    assert "No mailboxes on other.example yet. Once the required records are in place" in page
    assert f"?domain={pending.id}" not in page  # no mailboxes on a domain before it is verified


def _selected_domain(page):
    select = re.search(r'<select name="domain"[^>]*>(.*?)</select>', page, re.S).group(1)
    return re.findall(r'<option value="([^"]+)"[^>]*selected', select)


def test_create_mailbox_link_preselects_the_domain(signed_in, owner, outsider, verified_domain, dns_server):
    create = reverse("mailboxes:create")
    page = signed_in.get(create, {"domain": str(verified_domain.id)}).content.decode()
    assert _selected_domain(page) == [str(verified_domain.id)]
    assert signed_in.get(create).status_code == 200 and _selected_domain(signed_in.get(create).content.decode()) == []
    foreign = domain_add(account=outsider, name="foreign.example")
    pending = domain_add(account=owner, name="pending.example")
    for value in (str(foreign.id), str(pending.id), "not-a-uuid", "x" * 5000, ""):
        response = signed_in.get(create, {"domain": value})
        assert response.status_code == 200 and _selected_domain(response.content.decode()) == []
        assert "foreign.example" not in response.content.decode()
    # The preselected form creates the mailbox on that domain.
    response = signed_in.post(create, {"local_part": "team", "domain": str(verified_domain.id), "display_name": "",
                                       "forwarding_addresses": "", "forward_keep_copy": "on"})
    assert response.status_code == 302
    assert owner.mailboxes.filter(local_part="team", domain=verified_domain).exists()


# --- Unicode (IDN) names -----------------------------------------------------------------------------------

def _messages_and_errors(page):
    return re.findall(r'<li class="[^"]*">(.*?)</li>', page, re.S)


def test_an_idn_domain_is_shown_as_typed_and_punycode_only_where_dns_needs_it(signed_in, owner, dns_server):
    from domains.models import Domain

    response = signed_in.post(reverse("domains:add"), {"name": "bücher.example"}, follow=True)
    page = response.content.decode()
    domain = Domain.objects.get(account=owner)
    assert domain.name == "xn--bcher-kva.example" and domain.unicode_name == "bücher.example"
    assert "<title>bücher.example · QMailing</title>" in page
    assert re.search(r"<h1>bücher\.example <span", page) and page.count("<h1>") == 1
    assert ["bücher.example added. Publish the records below, then check DNS."] == _messages_and_errors(page)
    assert "Mailboxes on bücher.example" in page and "Remove bücher.example" in page
    # Hosts are what DNS needs (punycode), with the Unicode form beside them; the zone file is DNS only.
    assert '<code tabindex="0" class="copy-text" id="host-dmarc">_dmarc.xn--bcher-kva.example</code>' in page
    assert "_dmarc.bücher.example in Unicode" in page
    assert "; QMailing records for xn--bcher-kva.example" in page
    heading = page[:page.index("<h2>Records</h2>")]
    assert heading.count("xn--bcher-kva.example") == 1  # the one note saying how DNS writes the name

    dns_server.publish_checklist(domain)
    page = signed_in.post(reverse("domains:verify", args=[domain.id]), follow=True).content.decode()
    assert _messages_and_errors(page) == ["bücher.example is verified: you can create mailboxes on it."]
    dashboard = signed_in.get(reverse("dashboard")).content.decode()
    assert ">bücher.example</a>" in dashboard


def test_idn_names_in_error_messages_are_unicode(signed_in, owner, dns_server):
    from mailboxes.services import mailbox_create

    signed_in.post(reverse("domains:add"), {"name": "bücher.example"})
    response = signed_in.post(reverse("domains:add"), {"name": "BÜCHER.example"})
    page = unescape(response.content.decode())
    assert response.status_code == 400 and "bücher.example is already in your account." in page
    assert "xn--" not in page and 'value="BÜCHER.example"' in page  # the input is kept as typed

    domain = owner.domains.get()
    dns_server.publish_checklist(domain)
    domain = domain_verify(domain=domain)
    mailbox_create(account=owner, domain=domain, local_part="info")
    create = signed_in.get(reverse("mailboxes:create"), {"domain": str(domain.id)}).content.decode()
    assert re.search(rf'<option value="{domain.id}" selected>bücher\.example</option>', create)
    page = unescape(signed_in.post(reverse("domains:delete", args=[domain.id]), follow=True).content.decode())
    assert _messages_and_errors(page) == ["bücher.example still has mailboxes. Delete or move them first."]
    assert "info@bücher.example" in page  # the mailbox list on the domain page


def test_a_bad_idn_is_a_form_error_with_the_input_kept(signed_in, owner):
    response = signed_in.post(reverse("domains:add"), {"name": "bü--cher..example"})
    assert response.status_code == 400
    page = unescape(response.content.decode())
    assert 'value="bü--cher..example"' in page and "empty label" in page


# --- ownership ---------------------------------------------------------------------------------------------

def test_another_accounts_domain_is_404_on_every_domain_page(signed_in, outsider, dns_server):
    from domains.models import Domain

    foreign = domain_add(account=outsider, name="foreign.example")
    assert signed_in.get(reverse("domains:detail", args=[foreign.id])).status_code == 404
    assert signed_in.post(reverse("domains:verify", args=[foreign.id])).status_code == 404
    assert signed_in.post(reverse("domains:delete", args=[foreign.id])).status_code == 404
    foreign.refresh_from_db()
    assert foreign.last_checked_at is None and Domain.objects.filter(pk=foreign.pk).exists()


# --- the Overview's domains -----------------------------------------------------------------------------------

def test_overview_without_a_custom_domain_says_how_to_add_one(signed_in, owner, dns_server):
    page = signed_in.get(reverse("dashboard")).content.decode()
    assert "No custom domain yet." in page and "Add your first domain" in page
    assert f'href="{reverse("domains:add")}"' in page
    assert "includes 3 custom domains" in page  # PLUS, pluralised
    domain = domain_verify(domain=domain_add(account=owner, name="brand.example"))
    page = signed_in.get(reverse("dashboard")).content.decode()
    assert "No custom domain yet." not in page and reverse("domains:detail", args=[domain.id]) in page
    assert re.search(r'<time datetime="[^"]+" data-when="ago" title="[^"]+">just now</time>', page)
