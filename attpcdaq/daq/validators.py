"""Validation of names that end up in paths on the DAQ computers."""

from django.core.exceptions import ValidationError


def validate_path_component(value: str) -> None:
    """Refuse a name that cannot safely be one directory name.

    Spaces, quotes and any unicode are fine (every remote argument is quoted);
    what is refused is what would escape the directory or confuse a command.
    """
    if not value or not value.strip():
        raise ValidationError("The name is empty.")
    if value != value.strip():
        raise ValidationError("The name starts or ends with white space.")
    if value in (".", "..") or "/" in value or "\\" in value:
        raise ValidationError("The name may not be '.', '..' or contain a slash.")
    if value.startswith("-"):
        raise ValidationError("The name may not start with '-'.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValidationError("The name may not contain control characters.")
