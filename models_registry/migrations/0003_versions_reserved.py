"""Version numbers are reserved before the platform registers the files, so no lock is held during that call."""
from django.db import migrations, models
from django.db.models import Max


def from_versions(apps, schema_editor):
    RegisteredModel = apps.get_model("models_registry", "RegisteredModel")
    for model in RegisteredModel.objects.annotate(highest=Max("versions__version")):
        RegisteredModel.objects.filter(pk=model.pk).update(versions_reserved=model.highest or 0)


class Migration(migrations.Migration):

    dependencies = [
        ("models_registry", "0002_platform_sync"),
    ]

    operations = [
        migrations.AddField(
            model_name="registeredmodel",
            name="versions_reserved",
            field=models.PositiveIntegerField(
                default=0, editable=False,
                help_text="The highest version number handed out, registered or not: a number is never given twice."),
        ),
        migrations.RunPython(from_versions, migrations.RunPython.noop),
    ]
