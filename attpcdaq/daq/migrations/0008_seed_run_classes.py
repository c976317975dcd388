"""The run classes every installation starts with; admins may add more."""

from django.db import migrations

CLASSES = ["Testing", "Production", "Beam", "Pulser", "Junk"]


def seed(apps, schema_editor):
    run_class = apps.get_model("daq", "RunClass")
    for order, name in enumerate(CLASSES):
        run_class.objects.get_or_create(name=name, defaults={"order": order})


def unseed(apps, schema_editor):
    apps.get_model("daq", "RunClass").objects.filter(name__in=CLASSES, runs=None).delete()


class Migration(migrations.Migration):
    dependencies = [("daq", "0007_run_sheet")]
    operations = [migrations.RunPython(seed, unseed)]
