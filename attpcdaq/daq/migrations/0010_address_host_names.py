"""Addresses may be host names as well as IP addresses (issue 10)."""

import attpcdaq.daq.validators
from django.db import migrations, models


def drop_netmasks(apps, schema_editor):
    """PostgreSQL casts inet to text with its netmask (10.0.0.20/32): take it off."""
    for model in ("ECCServer", "DataRouter"):
        rows = apps.get_model("daq", model).objects.filter(ip_address__contains="/")
        for row in rows:
            row.ip_address = row.ip_address.split("/")[0]
            row.save(update_fields=["ip_address"])


class Migration(migrations.Migration):

    dependencies = [
        ('daq', '0009_roles_tokens'),
    ]

    operations = [
        migrations.AlterField(
            model_name='datarouter',
            name='ip_address',
            field=models.CharField(help_text='IP address or host name boards send data to.', max_length=253, validators=[attpcdaq.daq.validators.validate_address], verbose_name='address'),
        ),
        migrations.AlterField(
            model_name='eccserver',
            name='ip_address',
            field=models.CharField(help_text='IP address or host name of the ECC server.', max_length=253, validators=[attpcdaq.daq.validators.validate_address], verbose_name='address'),
        ),
        migrations.RunPython(drop_netmasks, migrations.RunPython.noop),
    ]
