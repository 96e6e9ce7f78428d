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
    assert "Last checked:" in page and "never" in page


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
    block = re.search(r'<pre class="copy-text mono" id="zone-file">(.*?)</pre>', page, re.S)
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
    assert re.search(r'Last checked:\s*<time datetime="[^"]+"', page) and " ago</time>" in page
    for record in domain_records(domain=domain):
        if record.fix:
            assert unescape(record.fix) in unescape(page)
