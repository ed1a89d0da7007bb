"""Which writers take a ref's turn (control/services/writer_race.py), on a real SQLite database: none that holds
a database lock other writers wait on, since the writer whose turn it is may wait on that lock."""
from __future__ import annotations

import time

from sqlalchemy import update

from control.bootstrap import bootstrap
from control.services.accounts import create_org
from control.services.writer_race import WriterRace
from storage.models import Organization
from storage.ref_turns import ref_turn
from storage.repo_writes import HOLDS_A_REPOSITORY_TURN
from storage.settings import Settings


def turn_taken(session, repo_path, racing: bool = True) -> bool:
    with WriterRace(session, seconds=0.2).turn(repo_path, "refs/heads/main", racing=racing) as got:
        return got


def test_a_writer_building_on_any_head_takes_the_turn_others_wait_for(tmp_path):
    context = bootstrap(Settings(data_dir=tmp_path / "data"))
    try:
        with context.db.session() as session:
            assert turn_taken(session, tmp_path)
            assert not turn_taken(session, tmp_path, racing=False)  # it names the head it expects: no race
            with ref_turn(tmp_path, "refs/heads/main", time.monotonic() + 1):
                assert not turn_taken(session, tmp_path)  # held elsewhere past its deadline: it goes on without
    finally:
        context.db.dispose()


def test_no_turn_for_a_transaction_holding_its_repository_s_turn_or_sqlite_s_write_lock(tmp_path):
    context = bootstrap(Settings(data_dir=tmp_path / "data"))
    try:
        with context.db.session() as session:
            session.info[HOLDS_A_REPOSITORY_TURN] = True
            assert not turn_taken(session, tmp_path)
        with context.db.session() as session:
            create_org(session, "writers")
        with context.db.session() as session:
            assert turn_taken(session, tmp_path)  # it has only read
            session.execute(update(Organization).values(slug=Organization.slug))
            assert not turn_taken(session, tmp_path)
    finally:
        context.db.dispose()


def test_a_writer_that_waited_out_the_turn_still_has_its_tries(tmp_path):
    """Waiting and trying once shared one deadline: writers that waited it out had one try each, and all but one
    were refused after "(1 tries)" (a review's repro: 7 of 8 behind a turn held 13 s)."""
    context = bootstrap(Settings(data_dir=tmp_path / "data"))
    try:
        with context.db.session() as session:
            with ref_turn(tmp_path, "refs/heads/main", time.monotonic() + 1):
                race = WriterRace(session, seconds=0.3)
                with race.turn(tmp_path, "refs/heads/main", racing=True) as got:
                    assert not got
                    assert race.again() and race.tries == 2
    finally:
        context.db.dispose()
