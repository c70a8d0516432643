"""TrackedJob.changed_at: when a refresh last found the snapshot different (see jobs.live).

Existing jobs start from their last successful refresh: their snapshot changed then or
before, so "no change for …" never claims more than is known."""

import django.utils.timezone
from django.db import migrations, models
from django.db.models import F


def start_from_last_refresh(apps, schema_editor):
    apps.get_model("jobs", "TrackedJob").objects.update(changed_at=F("fetched_at"))


class Migration(migrations.Migration):

    dependencies = [
        ("jobs", "0008_delivery_id"),
    ]

    operations = [
        migrations.AddField(
            model_name="trackedjob",
            name="changed_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.RunPython(start_from_last_refresh, migrations.RunPython.noop),
    ]
