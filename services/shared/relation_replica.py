"""The consumers that keep a service's replica of auth's blocks and mutes, the
same in every service that keeps one (services.shared.safety holds the tables
and their SQL).

Reach the mixin through this module (`relation_replica.RelationReplicaConsumers`):
`nameko run` would take a bare imported class with entrypoints for a service
of its own.
"""
from typing import Any, Protocol

from services.shared import contracts
from services.shared.events import consumes
from services.shared.unit_of_work import UnitOfWork


class RelationChanges(Protocol):
    """Where a service applies a change to its replica (a domain module of it)."""

    def change_block(self, uow: UnitOfWork, change: contracts.RelationChanged, active: bool) -> None: ...

    def change_mute(self, uow: UnitOfWork, change: contracts.RelationChanged, active: bool) -> None: ...


class RelationReplicaConsumers:
    """Mixed into a service with a unit of work (`uow`) and `relation_changes`."""

    uow: Any
    relation_changes: RelationChanges

    @consumes(contracts.UserBlocked)
    def on_user_blocked(self, event: contracts.UserBlocked) -> None:
        with self.uow as uow:
            if uow.first_delivery(event, "user_blocked"):
                self.relation_changes.change_block(uow, event, active=True)

    @consumes(contracts.UserUnblocked)
    def on_user_unblocked(self, event: contracts.UserUnblocked) -> None:
        with self.uow as uow:
            if uow.first_delivery(event, "user_unblocked"):
                self.relation_changes.change_block(uow, event, active=False)

    @consumes(contracts.UserMuted)
    def on_user_muted(self, event: contracts.UserMuted) -> None:
        with self.uow as uow:
            if uow.first_delivery(event, "user_muted"):
                self.relation_changes.change_mute(uow, event, active=True)

    @consumes(contracts.UserUnmuted)
    def on_user_unmuted(self, event: contracts.UserUnmuted) -> None:
        with self.uow as uow:
            if uow.first_delivery(event, "user_unmuted"):
                self.relation_changes.change_mute(uow, event, active=False)
