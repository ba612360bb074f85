"""Traffic steps keep their percentage in a column (they were named traffic_<percent>), and each step counts the
times it was run again after it broke."""
from django.db import migrations, models


def percent_from_kind(apps, schema_editor):
    PromotionStep = apps.get_model("deployments", "PromotionStep")
    for step in PromotionStep.objects.filter(kind__startswith="traffic_"):
        suffix = step.kind.split("_", 1)[1]
        if suffix.isdigit():
            PromotionStep.objects.filter(pk=step.pk).update(kind="traffic", percent=int(suffix))


def kind_from_percent(apps, schema_editor):
    PromotionStep = apps.get_model("deployments", "PromotionStep")
    for step in PromotionStep.objects.filter(kind="traffic", percent__isnull=False):
        PromotionStep.objects.filter(pk=step.pk).update(kind=f"traffic_{step.percent}")


class Migration(migrations.Migration):

    dependencies = [
        ("deployments", "0003_functional_run_purpose"),
    ]

    operations = [
        migrations.AddField(
            model_name="promotionstep",
            name="percent",
            field=models.PositiveSmallIntegerField(
                blank=True, help_text="For a traffic step: the share of traffic the new deployment takes.",
                null=True),
        ),
        migrations.AddField(
            model_name="promotionstep",
            name="retries",
            field=models.PositiveSmallIntegerField(
                default=0,
                help_text="Times the step was run again after it broke (an unexpected error, a dead worker)."),
        ),
        migrations.RunPython(percent_from_kind, kind_from_percent),
    ]
