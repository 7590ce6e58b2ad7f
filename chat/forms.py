"""Validation of the patron API's bodies, reporting every field in PROTOCOL.md's shape."""

from typing import Any

from django import forms

from refdesk.errors import ValidationFailed


class JsonForm(forms.Form):
    """A form fed from a JSON object: non-string values are refused, not coerced."""

    def __init__(self, data: dict[str, Any]):
        self.type_errors = {
            name: ["must be a string"]
            for name in self.base_fields
            if name in data
            and data[name] is not None
            and not isinstance(data[name], str)
        }
        super().__init__(
            {
                k: v
                for k, v in data.items()
                if k in self.base_fields and isinstance(v, str)
            }
        )

    def cleaned(self) -> dict[str, Any]:
        valid = self.is_valid()
        errors = {**{k: list(v) for k, v in self.errors.items()}, **self.type_errors}
        if not valid or errors:
            field, messages = next(iter(sorted(errors.items())))
            raise ValidationFailed(f"{field}: {messages[0]}", errors=errors)
        return self.cleaned_data


def _length_messages(limit: int) -> dict[str, str]:
    return {
        "max_length": f"at most {limit} characters",
        "required": "this field is required",
    }


class StartConversationForm(JsonForm):
    question = forms.CharField(max_length=2000, error_messages=_length_messages(2000))
    name = forms.CharField(
        max_length=100, required=False, error_messages=_length_messages(100)
    )
    email = forms.EmailField(
        max_length=254,
        required=False,
        error_messages={
            **_length_messages(254),
            "invalid": "enter a valid email address",
        },
    )
    home_library = forms.CharField(
        max_length=200, required=False, error_messages=_length_messages(200)
    )
    postal_code = forms.CharField(
        max_length=20, required=False, error_messages=_length_messages(20)
    )
