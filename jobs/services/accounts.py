"""Accounts: the first administrator, and accounts made by administrators or by sign-up."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from jobs.access import user_memberships


@transaction.atomic
def first_admin_create(*, username: str, password: str):
    """The very first account, an administrator; refused once any account exists."""
    User = get_user_model()
    if User.objects.exists():
        raise ValidationError("An administrator account already exists. Sign in instead.")
    user = User.objects.create_superuser(username=username, password=password)
    user_memberships(user)  # creates the personal workspace
    return user


@transaction.atomic
def account_create(*, username: str, password: str, is_staff: bool = False):
    User = get_user_model()
    user = User.objects.create_user(username=username, password=password, is_staff=is_staff)
    user_memberships(user)
    return user
