"""Failed logins throttled (django-axes, configured in settings.py): what a refused login
sees, and the client's address behind the HTTPS proxy."""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import NON_FIELD_ERRORS
from django.forms.utils import ErrorDict
from django.shortcuts import render


def lockout_message() -> str:
    """The sentence a throttled login gets."""
    minutes = settings.AXES_COOLOFF_TIME.total_seconds() / 60
    shown = f"{minutes:g} minute" + ("" if minutes == 1 else "s")
    return (f"Too many failed logins ({settings.AXES_FAILURE_LIMIT}) for this user from "
            f"this address: logins are refused for {shown}. Try again later, or ask an "
            "admin to lift it.")


def lockout_response(request, original_response=None, credentials=None):
    """The login page again, with the refusal in place of the password error (429)."""
    # Unbound (the name typed kept): a bound form would try the password once more.
    form = AuthenticationForm(request, initial={"username": request.POST.get("username", "")})
    form._errors = ErrorDict({NON_FIELD_ERRORS: form.error_class([lockout_message()],
                                                                 error_class="nonfield")})
    return render(request, "registration/login.html",
                  {"form": form, "next": request.POST.get("next", "")},
                  status=settings.AXES_HTTP_RESPONSE_CODE)


def client_address(request) -> str | None:
    """The client's address: with ATTPCDAQ_HTTPS=1 the proxy in front adds it last to
    X-Forwarded-For (anything before it may be the client's own invention)."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if settings.HTTPS and forwarded.strip():
        return forwarded.split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR")


class ThrottledLogins(AxesStandaloneBackend):
    """django-axes's check of throttled logins, for logins over the web only: a call of
    ``authenticate`` without a request (a script on this machine, Django's test client)
    has no address to throttle, and goes on to the password check."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)
