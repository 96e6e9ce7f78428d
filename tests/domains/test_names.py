import pytest

from domains.names import normalize_domain
from core.errors import Invalid


@pytest.mark.parametrize("raw, expected", [
    ("Example.COM", "example.com"),
    ("  brand.example.  ", "brand.example"),
    ("bücher.example", "xn--bcher-kva.example"),
    ("MÜNCHEN.example", "xn--mnchen-3ya.example"),
    ("a-b.c-d.example", "a-b.c-d.example"),
    ("\u200bexample.com", "example.com"),  # UTS #46 drops invisible characters
])
def test_domain_names_are_normalised(raw, expected):
    assert normalize_domain(raw) == expected


@pytest.mark.parametrize("raw, reason", [
    ("", "Enter a domain"),
    ("   ", "Enter a domain"),
    (None, "Enter a domain"),
    ("a@b", "without a mailbox"),
    ("you@example.com", "without a mailbox"),
    ("..", "empty label"),
    ("a..b.com", "empty label"),
    (".example.com", "empty label"),
    ("localhost", "full domain name"),
    ("-bad.example", "not allowed"),
    ("bad-.example", "not allowed"),
    ("under_score.example", "not"),
    ("x" * 64 + ".example", "63"),
    (("a" * 60 + ".") * 5 + "com", "253"),
    ("https://example.com", "bare domain"),
    ("example.com:25", "bare domain"),
    ("exa mple.com", "bare domain"),
    ("10.0.0.1", "IP address"),
    ("☃️.example", "internationalised"),
    ("xn--zz.example", "not allowed"),
])
def test_bad_domain_names_get_a_clear_error(raw, reason):
    with pytest.raises(Invalid) as err:
        normalize_domain(raw)
    assert reason.lower() in err.value.detail.lower()
    assert err.value.errors == {"name": [err.value.detail]}
