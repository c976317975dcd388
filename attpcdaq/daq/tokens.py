"""API tokens of users: create, list and revoke (issue 10, item 5).

Everyone logged in manages their own tokens; admins (daq/roles.py) manage anyone's.
A token is shown once, when it is made; only its SHA-256 is kept. A revoked token
stays listed (when it was revoked) but authenticates nobody.
"""

from __future__ import annotations

import unicodedata

from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from . import roles
from .models import ApiToken
from .services import ControlError
from .views import NotFound

#: The longest token name (the model's max_length).
NAME_MAX = 100
_INVISIBLE = frozenset("\u061c\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u202a\u202b"
                       "\u202c\u202d\u202e\u2060\u2066\u2067\u2068\u2069\ufeff")


class InvalidToken(ControlError):
    """A token request refused (HTTP 400)."""

    status = 400


class Forbidden(ControlError):
    """Not the user's to do (HTTP 403)."""

    status = 403


def clean_name(name) -> str:
    """A token's name: one line of 1 to 100 characters, no control or reordering ones."""
    if not isinstance(name, str):
        raise InvalidToken("The name must be text.")
    name = name.strip()
    if not name:
        raise InvalidToken("Give the token a name that says what it is for "
                           "(\"run CLI on daqpc\").")
    if len(name) > NAME_MAX:
        raise InvalidToken(f"The name is {len(name):,} characters long: at most {NAME_MAX} "
                           "are allowed.")
    for position, char in enumerate(name, 1):
        if unicodedata.category(char) in ("Cc", "Cs", "Cf") or char in _INVISIBLE:
            raise InvalidToken(f"The name contains U+{ord(char):04X} "
                               f"({unicodedata.name(char, 'a control character')}) at "
                               f"character {position}: write it as plain text on one line.")
    return name


def owner_for(actor, username) -> object:
    """Whose token ``actor`` asks for: themselves (``username`` empty or theirs), or,
    for an admin, the user named ``username``."""
    if username in (None, "") or username == actor.get_username():
        return actor
    if not isinstance(username, str):
        raise InvalidToken("The user must be a user name.")
    if not roles.is_admin(actor):
        raise Forbidden(f"{actor.get_username()} may manage only their own tokens: "
                        "tokens of others need the admin role.")
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"There is no user named {username[:150]!r}.")
    return user


def create(actor, name, username=None) -> tuple[ApiToken, str]:
    """A new token named ``name`` for ``actor`` (or, by an admin, for ``username``)."""
    name = clean_name(name)
    owner = owner_for(actor, username)
    if not owner.is_active:
        raise InvalidToken(f"{owner.get_username()} is not an active user.")
    return ApiToken.create(owner, name)


def visible(actor, *, everyone: bool = False) -> QuerySet:
    """The tokens ``actor`` may see: their own; every user's for an admin who asks."""
    found = ApiToken.objects.select_related("user")
    if everyone and roles.is_admin(actor):
        return found
    return found.filter(user=actor)


def find(actor, pk) -> ApiToken:
    """The token with id ``pk`` that ``actor`` may manage, or :class:`NotFound`."""
    text = str(pk)
    row = None
    if text.isascii() and text.isdigit() and len(text) <= 18:
        row = visible(actor, everyone=True).filter(pk=int(text)).first()
    if row is None:
        raise NotFound(f"You have no API token with id {text[:40]!r}.")
    return row


def revoke(actor, pk) -> ApiToken:
    """Revoke the token ``pk`` (the actor's own, or anyone's for an admin)."""
    row = find(actor, pk)
    row.revoke()
    return row


def record(row: ApiToken) -> dict:
    """What is said of a token (never the token itself)."""
    return {"id": row.pk, "name": row.name, "user": row.user.get_username(),
            "created": row.created, "last_used": row.last_used, "revoked": row.revoked,
            "active": row.revoked is None}
