"""Validation of the ticket API's bodies and of the ticket pages' forms."""

from django import forms

from chat.forms import JsonForm
from tickets.models import TicketStatus
from tickets.services.work import MAX_BODY_CHARS


def _messages(limit: int) -> dict[str, str]:
    return {
        "max_length": f"at most {limit} characters",
        "required": "this field is required",
        "invalid": "enter a valid email address",
    }


class FollowUpForm(JsonForm):
    email = forms.EmailField(max_length=254, error_messages=_messages(254))


class QuestionForm(JsonForm):
    question = forms.CharField(max_length=2000, error_messages=_messages(2000))
    email = forms.EmailField(max_length=254, error_messages=_messages(254))
    name = forms.CharField(
        max_length=100, required=False, error_messages=_messages(100)
    )
    home_library = forms.CharField(
        max_length=200, required=False, error_messages=_messages(200)
    )
    postal_code = forms.CharField(
        max_length=20, required=False, error_messages=_messages(20)
    )


class ReplyForm(forms.Form):
    body = forms.CharField(
        label="Reply to the patron",
        max_length=MAX_BODY_CHARS,
        widget=forms.Textarea(attrs={"rows": 6}),
    )


class NoteForm(forms.Form):
    body = forms.CharField(
        label="Internal note",
        max_length=MAX_BODY_CHARS,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Only librarians see notes; the patron never does.",
    )


class StatusForm(forms.Form):
    status = forms.ChoiceField(
        label="Status",
        choices=[
            (TicketStatus.OPEN, "Open"),
            (TicketStatus.ANSWERED, "Answered"),
            (TicketStatus.CLOSED, "Closed"),
        ],
    )
