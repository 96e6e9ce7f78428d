"""Admin pieces shared by the apps."""


class ReadOnlyAdmin:
    """For records that only services may write (mail, events, delivery attempts): viewable, never edited here."""

    can_add = False
    can_change = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name not in (self.exclude or ())]

    def has_add_permission(self, request, obj=None):
        return self.can_add

    def has_change_permission(self, request, obj=None):
        return self.can_change


class NoSecretLookups:
    """Refuses every admin list lookup (?field__contains=…) that touches a model's `secret_fields`.

    Counts in a filtered list answer "does the key start with M?", so such a filter reads a secret one
    character at a time. Relations are followed (?domain__dkim_private_key__… from another model's
    list). A refused lookup is Django's DisallowedModelAdminLookup: a 400, never a count.
    Every registered ModelAdmin carries this mixin; a test walks the admin registry to keep it so.
    """

    def lookup_allowed(self, lookup, value, request=None):
        model = self.model
        for part in lookup.split("__"):
            if part in getattr(model, "secret_fields", ()):
                return False
            try:
                field = model._meta.get_field(part)
            except Exception:  # a transform or lookup name (contains, year…): the path ends here
                break
            if not getattr(field, "related_model", None):
                break
            model = field.related_model
        return super().lookup_allowed(lookup, value, request)
