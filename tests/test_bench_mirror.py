"""`bench.mirror` measures what it names on both databases, by the names its options take."""

import pytest

from bench.mirror import measure_mirror
from tests.conftest import require_pg_role


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_measure_mirror_on_each_database_by_its_shorthand(database: str) -> None:
    if database == "postgresql":
        require_pg_role()
    figures = measure_mirror(database, rows=3_000, changes=50)
    assert figures["database"] == database
    rates = figures["first_loads_rows_per_s"]
    assert len(rates) == 3 and all(rate > 0 for rate in rates)
    assert figures["mirror_first_load_rows_per_s"] == sorted(rates)[1]
    assert figures["mirror_incremental_overhead"] >= 0
