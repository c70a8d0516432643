"""A stable id per delivery, sent with every attempt; existing deliveries get one each.

Three steps, as a unique column with a callable default needs: add it nullable, give every row
its own UUID, then make it unique and required.
"""

import uuid

from django.db import migrations, models


def give_each_delivery_an_id(apps, schema_editor):
    Delivery = apps.get_model("jobs", "Delivery")
    for delivery in Delivery.objects.filter(delivery_id__isnull=True).only("pk").iterator():
        Delivery.objects.filter(pk=delivery.pk).update(delivery_id=uuid.uuid4())


class Migration(migrations.Migration):

    dependencies = [
        ("jobs", "0007_token_watch_and_imports"),
    ]

    operations = [
        migrations.AddField(
            model_name="delivery",
            name="delivery_id",
            field=models.UUIDField(null=True, editable=False),
        ),
        migrations.RunPython(give_each_delivery_an_id, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="delivery",
            name="delivery_id",
            field=models.UUIDField(default=uuid.uuid4, unique=True, editable=False),
        ),
    ]
