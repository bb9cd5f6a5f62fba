"""`xiaoche healthcheck scheduler`: healthy while a real `xiaoche scheduler` holds and renews the
lease, unhealthy when none does (never started, or killed and its lease run out)."""

from __future__ import annotations

import time

from backend.cli.ops import healthcheck_command
from backend.extensions import db
from backend.health import check_scheduler
from tests.integration.scheduler.conftest import LEASE_S


def healthcheck(app):
    result = app.test_cli_runner().invoke(healthcheck_command, ["scheduler"])
    return result.exit_code, result.output.strip()


def test_healthy_while_a_scheduler_holds_the_lease_and_not_after_it_died(app,
                                                                         scheduler_processes):
    code, line = healthcheck(app)
    assert (code, line) == (1, "scheduler: nobody holds the scheduler lease: no scheduler runs "
                               "the jobs")

    scheduler = scheduler_processes()
    scheduler.wait_for(scheduler.holding, "for the free lease")
    # renewed every third of the lease: still healthy a whole lease later
    time.sleep(float(LEASE_S) + 1)
    code, line = healthcheck(app)
    assert code == 0, line
    assert line.startswith(f"scheduler: ok: {scheduler.holder} holds the scheduler lease")

    scheduler.kill9()
    time.sleep(float(LEASE_S) + 0.5)
    code, line = healthcheck(app)
    assert code == 1
    assert f"the scheduler lease of {scheduler.holder} expired" in line


def test_an_unreachable_database_is_unhealthy(app):
    from sqlalchemy import create_engine

    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2")
    ok, reason = check_scheduler(engine)
    assert not ok and reason.startswith("cannot read the lease: OperationalError")
    with app.app_context():
        assert check_scheduler(db.engine)[0] is False  # and the real one, empty: nobody holds it
