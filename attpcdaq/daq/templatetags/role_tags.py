"""Template filters of the roles (daq/roles.py): ``{{ user|role }}``, ``user|has_role:"admin"``."""

from django import template

from attpcdaq.daq import roles

register = template.Library()


@register.filter
def role(user) -> str:
    """The highest role of ``user`` (viewer, operator or admin), or ""."""
    return roles.role_of(user) or ""


@register.filter
def has_role(user, name: str) -> bool:
    """Whether ``user`` has the role ``name``."""
    return name in roles.CHECKS and roles.has_role(user, name)
