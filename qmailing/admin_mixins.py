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
