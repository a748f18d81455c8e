"""Bind each launch to the issuer its tokens were issued for; stop keeping users' names.

Existing launches take their EHR's current issuer. Names copied from id_tokens before (a
patient's name, on a patient launch) are blanked: nothing shows them, and auth_user outlives
every launch.
"""

from django.db import migrations, models


def bind_launches_and_forget_names(apps, schema_editor):
    Launch = apps.get_model("smartapp", "Launch")
    for launch in Launch.objects.select_related("ehr").filter(iss=""):
        launch.iss = launch.ehr.iss
        launch.save(update_fields=["iss"])
    User = apps.get_model("auth", "User")
    User.objects.filter(username__startswith="smart-").update(first_name="", last_name="", email="")


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("smartapp", "0005_discovery_problems"),
    ]

    operations = [
        migrations.AddField(
            model_name="launch",
            name="iss",
            field=models.URLField(
                default="",
                help_text="The FHIR base the tokens were issued for; if an admin moves the EHR's iss, "
                "this launch ends rather than send its token to the new address.",
                max_length=500,
            ),
            preserve_default=False,
        ),
        migrations.RunPython(bind_launches_and_forget_names, migrations.RunPython.noop),
    ]
