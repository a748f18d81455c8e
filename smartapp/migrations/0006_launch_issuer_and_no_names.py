"""Bind each launch to the issuer its tokens were issued for; stop keeping users' names.

Existing launches take their EHR's current issuer (one UPDATE; no row is loaded, so nothing is
decrypted). The column has a database default, so launches an older release inserts during a
rolling deploy are bound on first use. Names copied from id_tokens before (a patient's name, on a
patient launch) are blanked: nothing shows them, and auth_user outlives every launch.
"""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def bind_launches_and_forget_names(apps, schema_editor):
    Ehr = apps.get_model("smartapp", "Ehr")
    Launch = apps.get_model("smartapp", "Launch")
    Launch.objects.filter(iss="").update(
        iss=Subquery(Ehr.objects.filter(pk=OuterRef("ehr_id")).values("iss")[:1])
    )
    User = apps.get_model("auth", "User")
    # Only the app's own opaque usernames (smartapp.identity.stable_username), never staff accounts.
    User.objects.filter(username__regex=r"^smart-[0-9a-f]{40}$").update(first_name="", last_name="", email="")


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
                blank=True,
                db_default="",
                default="",
                help_text="The FHIR base the tokens were issued for; if an admin moves the EHR's iss, "
                "this launch ends rather than send its token to the new address.",
                max_length=500,
            ),
        ),
        migrations.RunPython(bind_launches_and_forget_names, migrations.RunPython.noop),
    ]
