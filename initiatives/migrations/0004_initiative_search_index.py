"""PostgreSQL: a GIN index on the full-text document of an initiative (title and story), which
the global search matches (initiatives.selectors.initiatives_matching builds the same
expression; tests/bizdevops/test_search.py checks with EXPLAIN that it is used). Other
databases search by substring and get no index. Not in the model's Meta: the index exists on
PostgreSQL only."""

from __future__ import annotations

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import migrations

# A frozen copy of initiatives.selectors.SEARCH_FIELDS / SEARCH_CONFIG as of this migration.
FIELDS = (
    "title",
    "business_problem",
    "business_requirements",
    "use_case",
    "algorithm_translation",
    "data_feasibility",
)
INDEX = GinIndex(SearchVector(*FIELDS, config="english"), name="initiative_search")


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.add_index(apps.get_model("initiatives", "Initiative"), INDEX)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.remove_index(apps.get_model("initiatives", "Initiative"), INDEX)


class Migration(migrations.Migration):
    dependencies = [("initiatives", "0003_handover_history_guards")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
