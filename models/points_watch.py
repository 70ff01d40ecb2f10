"""Telling whoever asked, once a transaction that wrote a customer's purchases or points
has committed: the staff group shows that customer's card with them (bot.staff_inbox).

The listeners hear every ORM session of the process; a session of a `Database` nobody
watches carries no watchers and costs a lookup per flush. Rows written past the ORM (the
imports' bulk statements) are not seen: an import tells no one, as thousands of card
edits at once would run into the group's limits."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session, UOWTransaction

from models.loyalty import PointsEntry, Purchase

# Called with the ids of the customers whose purchases or ledger the transaction wrote.
PointsWatcher = Callable[[list[int]], None]
# Keys of `Session.info`: a Database's watchers (given to each of its sessions), and the
# customers the transaction under way has written for so far.
WATCHERS = "carebot_points_watchers"
_WRITTEN_FOR = "carebot_points_written_for"

log = logging.getLogger(__name__)


@event.listens_for(Session, "after_flush")
def _note(session: Session, _flush: UOWTransaction) -> None:
    if not session.info.get(WATCHERS):
        return
    customers = {
        row.customer_id
        for row in session.new
        if isinstance(row, (Purchase, PointsEntry)) and row.customer_id is not None
    }
    if customers:
        session.info.setdefault(_WRITTEN_FOR, set()).update(customers)


@event.listens_for(Session, "after_commit")
def _tell(session: Session) -> None:
    customers = sorted(session.info.pop(_WRITTEN_FOR, ()))
    if not customers:
        return
    for watcher in session.info[WATCHERS]:
        # The transaction has committed: a watcher's failure must not look like its own.
        try:
            watcher(customers)
        except Exception:
            log.exception("customers %s: a watcher of their points failed", customers)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_WRITTEN_FOR, None)
