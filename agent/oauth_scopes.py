"""The scopes django-oauth-toolkit offers and grants: those of accounts.scopes, read where they are defined
(the settings name this class instead of importing an app)."""

from oauth2_provider.scopes import BaseScopes

from accounts.scopes import DEFAULT_SCOPES, SCOPES


class ProductScopes(BaseScopes):
    def get_all_scopes(self):
        return dict(SCOPES)

    def get_available_scopes(self, application=None, request=None, *args, **kwargs):
        return list(SCOPES)

    def get_default_scopes(self, application=None, request=None, *args, **kwargs):
        return list(DEFAULT_SCOPES)
