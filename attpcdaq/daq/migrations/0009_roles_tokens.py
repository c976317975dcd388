"""The groups of the three roles (see daq/roles.py), and named, revocable API tokens.

"viewer" grants nothing beyond logging in; "operator" and "admin" hold
daq.control_daq (admins are operators too; being in "admin" is what makes one).
"""

from django.db import migrations, models

GROUPS = {"viewer": [], "operator": ["control_daq"], "admin": ["control_daq"]}


def create_groups(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations; make ours exist now.
    app_config = apps.get_app_config("daq")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    group = apps.get_model("auth", "Group")
    permission = apps.get_model("auth", "Permission")
    for name, codenames in GROUPS.items():
        row, _ = group.objects.get_or_create(name=name)
        row.permissions.add(*permission.objects.filter(content_type__app_label="daq",
                                                       codename__in=codenames))


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [("daq", "0008_seed_run_classes"),
                    ("auth", "0012_alter_user_first_name_max_length"),
                    ("contenttypes", "0002_remove_content_type_name")]

    operations = [
        migrations.AlterModelOptions(
            name="apitoken",
            options={"ordering": ["-created", "-pk"], "verbose_name": "API token"},
        ),
        migrations.AddField(
            model_name="apitoken",
            name="name",
            field=models.CharField(blank=True, help_text="What the token is for, as its owner "
                                   "said (\"run CLI on daqpc\").", max_length=100),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="revoked",
            field=models.DateTimeField(blank=True, help_text="When it was revoked; a revoked "
                                       "token authenticates nobody.", null=True),
        ),
        migrations.RunPython(create_groups, remove_groups),
    ]
