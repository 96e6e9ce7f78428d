"""The authorization server's routes, in DOT's `oauth2_provider` namespace (its views reverse these names).

Mounted at the site root: RFC 8414 and RFC 9728 documents live at the origin's /.well-known/.
Only what the flow needs: no introspection, device flow or application-management pages.
"""

from django.urls import path, re_path
from oauth2_provider import views as dot

from agent import consent, oauth

app_name = "oauth2_provider"

urlpatterns = [
    path(".well-known/oauth-authorization-server", dot.OAuthServerMetadataView.as_view(), name="oauth-server-metadata"),
    path(".well-known/oauth-protected-resource", oauth.ProtectedResourceMetadataView.as_view(),
         name="oauth-resource-metadata"),
    re_path(r"^\.well-known/oauth-protected-resource/(?P<resource_path>mcp|api/v1/pub)/?$",
            oauth.ProtectedResourceMetadataView.as_view(), name="oauth-resource-metadata-path"),
    path("oauth/authorize/", consent.ConsentView.as_view(), name="authorize"),
    path("oauth/token/", oauth.SingleUseCodeTokenView.as_view(), name="token"),
    path("oauth/revoke_token/", dot.RevokeTokenView.as_view(), name="revoke-token"),
    path("oauth/register/", oauth.RegistrationView.as_view(), name="dcr-register"),
    path("oauth/register/<str:client_id>/", oauth.RegistrationManagementView.as_view(), name="dcr-register-management"),
]
