"""What Django's error pages and error reports may show: never a credential, with DEBUG on or off.

Django's own filter hides settings by name (KEY, SECRET, PASS, …) and only outside DEBUG. Ours is the
`DEFAULT_EXCEPTION_REPORTER_FILTER` and also
- hides settings, request headers and environment values whose names say URL, DSN, BROKER, CREDENTIAL, …;
- masks the password inside any URL (`postgres://user:••••@host`, `redis://:••••@host`) or key=value
  string (`password=••••` in a libpq DSN or a query string), wherever it sits: settings, nested
  dicts and lists (CHANNEL_LAYERS hosts), request.META (which holds the environment under WSGI),
  cookies, POST data and traceback variables;
- hides POST fields and traceback variables named like secrets (password, token, …) even on the DEBUG page.
"""

import re

from django.utils.datastructures import MultiValueDict
from django.views.debug import SafeExceptionReporterFilter

SUBSTITUTE = SafeExceptionReporterFilter.cleansed_substitute

# scheme://user:password@ or scheme://token@ — the password may hold anything but whitespace, up to the
# last "@" (an unencoded "@" in a password then still hides it all; a later "@" can only over-mask).
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.\-]{0,30}://)(?P<user>[^\s:/?#@]*)(?P<password>:\S*)?@", re.I)
_KEY_VALUE = re.compile(
    r"(?P<name>\b(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key|auth)\s*=\s*)"
    r"(?P<value>'[^']*'|\"[^\"]*\"|[^\s&;,'\"]+)",
    re.I,
)


def mask_credentials(text):
    """`text` with every URL password (or bare URL userinfo) and every `password=…`-style value masked."""

    def userinfo(match):
        if match["password"] is not None:
            return f"{match['scheme']}{match['user']}:{SUBSTITUTE}@"
        return f"{match['scheme']}{SUBSTITUTE}@"

    text = _URL_USERINFO.sub(userinfo, text)
    return _KEY_VALUE.sub(lambda match: f"{match['name']}{SUBSTITUTE}", text)


class CredentialMaskingFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|URL|URI|DSN|BROKER|CREDENTIAL|PRIVATE", flags=re.I
    )
    # Narrower, for POST fields and local variables, where "key" or "url" are everyday names worth seeing.
    hidden_names = re.compile("PASS|SECRET|TOKEN|CREDENTIAL|SIGNATURE|API_?KEY|PRIVATE_?KEY|AUTHORIZATION", flags=re.I)

    def cleanse_setting(self, key, value):
        cleansed = super().cleanse_setting(key, value)  # recurses into dicts, lists and tuples through this method
        return mask_credentials(cleansed) if isinstance(cleansed, str) else cleansed

    def get_post_parameters(self, request):
        return self._cleanse_multivaluedict(super().get_post_parameters(request))

    def get_cleansed_multivaluedict(self, request, multivaluedict):
        # Django calls this for a QueryDict met among traceback variables (request.POST, request.GET).
        return self._cleanse_multivaluedict(super().get_cleansed_multivaluedict(request, multivaluedict))

    def get_traceback_frame_variables(self, request, tb_frame):
        return [(name, self._cleanse_variable(name, value))
                for name, value in super().get_traceback_frame_variables(request, tb_frame)]

    def _cleanse_multivaluedict(self, values):
        if not isinstance(values, MultiValueDict) or not values:
            return values
        cleansed = MultiValueDict()  # built anew: QueryDict.copy() deep-copies, and uploaded files may not copy
        for name, items in values.lists():
            if self.hidden_names.search(name):
                cleansed.setlist(name, [SUBSTITUTE] * len(items))
            else:
                cleansed.setlist(name, [mask_credentials(v) if isinstance(v, str) else v for v in items])
        return cleansed

    def _cleanse_variable(self, name, value, depth=0):
        if isinstance(name, str) and self.hidden_names.search(name):
            return SUBSTITUTE
        if depth > 4:  # deep enough for connection kwargs; the page trims big values anyway
            return value
        if isinstance(value, str):
            return mask_credentials(value)
        if isinstance(value, dict):
            return {k: self._cleanse_variable(k, v, depth + 1) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            cleansed = [self._cleanse_variable("", v, depth + 1) for v in value]
            return cleansed if isinstance(value, list) else tuple(cleansed)
        return value
