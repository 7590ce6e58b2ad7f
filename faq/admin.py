"""Admin for FAQ answers and canned responses, scoped like the libraries admin.

Consortium admins see and edit everything; a library admin sees their library's
answers and library responses only (consortium-wide ones answer 403). Answers
are saved through `faq.services.save_answer`, which keeps the search index
current; drafts made from chats and tickets are published with the "Publish"
action.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.utils.safestring import SafeString

from faq import services
from faq.models import Answer, CannedResponse, CannedScope
from libraries import rendering
from libraries.admin import LibraryScopedAdmin, admin_scope
from libraries.forms import ScopedFormMixin
from refdesk.errors import RefdeskError


class AnswerForm(ScopedFormMixin, forms.ModelForm):
    tags = forms.CharField(
        required=False,
        help_text="Comma-separated topics that help search, e.g. cards, non-residents.",
    )

    class Meta:
        model = Answer
        fields = ["question", "answer", "library", "is_public", "tags", "is_published"]
        widgets = {"answer": forms.Textarea(attrs={"rows": 12})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["tags"] = ", ".join(self.instance.tags or [])

    def clean_tags(self) -> list[str]:
        return services.clean_tags(self.cleaned_data.get("tags", "").split(","))


class DraftFilter(admin.SimpleListFilter):
    title = "origin"
    parameter_name = "origin"

    def lookups(self, request, model_admin):
        return [("draft", "drafted from a chat or ticket"), ("written", "written here")]

    def queryset(self, request, queryset):
        if self.value() == "draft":
            return queryset.exclude(drafted_from="")
        if self.value() == "written":
            return queryset.filter(drafted_from="")
        return queryset


@admin.register(Answer)
class AnswerAdmin(LibraryScopedAdmin):
    form = AnswerForm
    list_display = (
        "question",
        "owner",
        "is_public",
        "is_published",
        "open_count",
        "self_served_count",
        "updated_at",
    )
    list_filter = (
        "is_published",
        "is_public",
        ("library", admin.RelatedOnlyFieldListFilter),
        DraftFilter,
    )
    list_select_related = ("library",)
    search_fields = ("question", "answer")
    autocomplete_fields = ("library",)
    ordering = ("-updated_at", "-id")
    readonly_fields = (
        "preview",
        "drafted_from",
        "created_by",
        "created_at",
        "published_by",
        "published_at",
        "open_count",
        "self_served_count",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("question", "answer", "preview", "tags")}),
        ("Who sees it", {"fields": ("library", "is_public", "is_published")}),
        (
            "History and use",
            {
                "fields": (
                    "drafted_from",
                    "created_by",
                    "created_at",
                    "published_by",
                    "published_at",
                    "updated_at",
                    "open_count",
                    "self_served_count",
                )
            },
        ),
    )
    actions = ("publish", "unpublish")

    @admin.display(description="library", ordering="library__name")
    def owner(self, obj: Answer) -> str:
        return obj.library.name if obj.library_id else "consortium-wide"

    @admin.display(description="as patrons see it")
    def preview(self, obj: Answer) -> SafeString | str:
        return rendering.render_markdown(obj.answer) if obj.answer else "—"

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = self.form.scoped(library=admin_scope(request).own_library)
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request, obj, form, change):
        try:
            services.save_answer(answer=obj, user=request.user)
        except RefdeskError as error:
            raise PermissionDenied(error.detail) from error

    def _each(self, request, queryset, service, done: str) -> None:
        count = 0
        for answer in queryset:
            try:
                service(answer_id=answer.pk, user=request.user)
            except RefdeskError as error:
                self.message_user(request, f"{answer}: {error.detail}", messages.ERROR)
                continue
            count += 1
        self.message_user(request, done.format(count=count), messages.SUCCESS)

    @admin.action(
        description="Publish",
        permissions=["change"],
        location=[admin.ActionLocation.CHANGE_LIST, admin.ActionLocation.CHANGE_FORM],
    )
    def publish(self, request, queryset):
        self._each(
            request, queryset, services.publish_answer, "Published {count} answer(s)."
        )

    @admin.action(description="Unpublish", permissions=["change"])
    def unpublish(self, request, queryset):
        self._each(
            request,
            queryset,
            services.unpublish_answer,
            "Unpublished {count} answer(s).",
        )


class CannedResponseForm(ScopedFormMixin, forms.ModelForm):
    class Meta:
        model = CannedResponse
        fields = ["scope", "library", "owner", "shortcut", "title", "body"]
        widgets = {"body": forms.Textarea(attrs={"rows": 8})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.fixed_library is not None:
            self.fields["scope"].choices = [(CannedScope.LIBRARY, "Library")]
            self.fields["scope"].initial = CannedScope.LIBRARY

    def clean(self):
        data = super().clean()
        scope = data.get("scope")
        if scope == CannedScope.CONSORTIUM:
            data["library"], data["owner"] = None, None
        elif scope == CannedScope.LIBRARY:
            data["owner"] = None
            if data.get("library") is None:
                self.add_error(
                    "library", "Choose the library this response belongs to."
                )
        elif scope == CannedScope.PERSONAL:
            owner = data.get("owner")
            if owner is None:
                self.add_error(
                    "owner", "Choose the librarian this response belongs to."
                )
            else:
                data["library"] = owner.library
        return data


@admin.register(CannedResponse)
class CannedResponseAdmin(LibraryScopedAdmin):
    form = CannedResponseForm
    list_display = ("shortcut", "title", "scope", "library", "owner")
    list_filter = ("scope", ("library", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("library", "owner")
    search_fields = ("shortcut", "title", "body")
    autocomplete_fields = ("library", "owner")
    ordering = ("scope", "shortcut", "id")

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if admin_scope(request).is_consortium_admin:
            return queryset
        return queryset.filter(scope=CannedScope.LIBRARY)  # personal ones stay personal

    def get_fields(self, request, obj=None):
        fields = ["scope", "library", "owner", "shortcut", "title", "body"]
        if not admin_scope(request).is_consortium_admin:
            fields.remove("owner")
        return fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = self.form.scoped(library=admin_scope(request).own_library)
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request, obj, form, change):
        try:
            services.save_canned_response(response=obj)
        except RefdeskError as error:
            raise PermissionDenied(error.detail) from error
