"""Every account has its personal workspace: made with the account from now on (see
jobs.services.accounts); this gives one to the accounts made before, which got theirs on first
use. Undone, it removes nothing: the workspaces may hold tokens and jobs by then."""

from django.conf import settings
from django.db import migrations
from django.db.models import F


def personal_workspaces_create(apps, schema_editor):
    User = apps.get_model(settings.AUTH_USER_MODEL)
    Workspace = apps.get_model("jobs", "Workspace")
    Membership = apps.get_model("jobs", "Membership")
    # What first use did: the workspace if missing, and the owner's membership of it if missing.
    for user in User.objects.exclude(memberships__workspace__personal_for=F("pk")).order_by("pk"):
        workspace, _ = Workspace.objects.get_or_create(
            personal_for=user, defaults={"name": f"{user.username} (personal)"}
        )
        Membership.objects.get_or_create(workspace=workspace, user=user, defaults={"role": "owner"})


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0010_token_request_budget"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(personal_workspaces_create, migrations.RunPython.noop)]
