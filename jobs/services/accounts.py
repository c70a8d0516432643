"""Accounts: the first administrator, accounts made by administrators or by sign-up, and the
personal workspace every account gets the moment it exists."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from jobs.models import Membership, Workspace


@transaction.atomic
def first_admin_create(*, username: str, password: str):
    """The very first account, an administrator; refused once any account exists."""
    User = get_user_model()
    if User.objects.exists():
        raise ValidationError("An administrator account already exists. Sign in instead.")
    return User.objects.create_superuser(username=username, password=password)


@transaction.atomic
def account_create(*, username: str, password: str, is_staff: bool = False):
    User = get_user_model()
    return User.objects.create_user(username=username, password=password, is_staff=is_staff)


@transaction.atomic
def personal_workspace_create(user) -> Membership:
    """The user's personal workspace and their owner membership of it (kept if they exist)."""
    workspace, _ = Workspace.objects.get_or_create(
        personal_for=user, defaults={"name": f"{user.get_username()} (personal)"}
    )
    membership, _ = Membership.objects.get_or_create(
        workspace=workspace, user=user, defaults={"role": Membership.Role.OWNER}
    )
    return membership


def on_user_saved(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    """post_save of the user model (connected in jobs.apps): a new account gets its personal
    workspace. A signal, not a call in each place accounts are made, because some of those
    places are Django's own (`manage.py createsuperuser`, the admin, RemoteUserBackend's sign-up
    on first sight) and none can be forgotten this way. Rows loaded raw (loaddata) bring their
    own workspaces along."""
    if created and not raw:
        personal_workspace_create(instance)
