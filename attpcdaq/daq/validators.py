"""Validation of names that end up in paths on the DAQ computers."""

import unicodedata

from django.core.exceptions import ValidationError

#: The longest experiment name (the model's max_length).
EXPERIMENT_NAME_MAX = 100

# Characters that reorder or hide the text around them (bidirectional embeddings,
# overrides, isolates and marks, zero-width characters) or break lines: refused in
# names, which are shown to others and become folder names.
_INVISIBLE = frozenset("\u061c\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u202a\u202b"
                       "\u202c\u202d\u202e\u2060\u2066\u2067\u2068\u2069\ufeff")


def _describe(char: str) -> str:
    return f"U+{ord(char):04X} ({unicodedata.name(char, 'a control character')})"


def validate_path_component(value: str) -> None:
    """Refuse a name that cannot safely be one directory name.

    Spaces, quotes and any unicode are fine (every remote argument is quoted);
    what is refused is what would escape the directory or confuse a command, and
    characters that hide or reorder the text (control, bidirectional override,
    zero-width and other format characters).
    """
    if not isinstance(value, str):
        raise ValidationError("The name must be text.")
    if not value or not value.strip():
        raise ValidationError("The name is empty.")
    for position, char in enumerate(value, 1):
        if unicodedata.category(char) in ("Cc", "Cs") or char in _INVISIBLE:
            kind = ("a control character" if unicodedata.category(char) == "Cc"
                    else "a character that hides or reorders text")
            raise ValidationError(f"The name may not contain {kind}: {_describe(char)} at "
                                  f"character {position}.")
    if value != value.strip():
        raise ValidationError("The name starts or ends with white space.")
    if value in (".", "..") or "/" in value or "\\" in value:
        raise ValidationError("The name may not be '.', '..' or contain a slash.")
    if value.startswith("-"):
        raise ValidationError("The name may not start with '-'.")
    if any(unicodedata.category(ch) == "Cf" for ch in value):
        char = next(ch for ch in value if unicodedata.category(ch) == "Cf")
        raise ValidationError(f"The name may not contain the invisible character "
                              f"{_describe(char)}.")


def validate_experiment_name(value: str) -> None:
    """An experiment's name: one directory name of at most 100 characters."""
    validate_path_component(value)
    if len(value) > EXPERIMENT_NAME_MAX:
        raise ValidationError(f"The name is {len(value):,} characters long: at most "
                              f"{EXPERIMENT_NAME_MAX} are allowed.")


def validate_address(value: str) -> None:
    """An ECC server's or data router's address: an IP address or an RFC 1123 host name
    (the rules live in :func:`attpcdaq.daq.setup.check_address`)."""
    from .setup import check_address

    problem = check_address(value)
    if problem:
        raise ValidationError(f"The address {problem}.")
