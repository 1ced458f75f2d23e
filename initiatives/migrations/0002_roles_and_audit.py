from __future__ import annotations

from typing import Any

from django.db import migrations

from bizdevops.db import append_only_trigger

ROLES = [
    "Program manager",
    "Data scientist",
    "Data engineer",
    "DevOps engineer",
    "Business stakeholder",
]


def create_roles(apps: Any, schema_editor: Any) -> None:
    Group = apps.get_model("auth", "Group")
    for name in ROLES:
        Group.objects.get_or_create(name=name)


def remove_roles(apps: Any, schema_editor: Any) -> None:
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("initiatives", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunPython(create_roles, remove_roles),
        append_only_trigger("initiatives_handover"),
    ]
