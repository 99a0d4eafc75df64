"""The domain events' contracts (services.shared.contracts): every event a
service publishes is consumed by a service of LifyTP or is marked as published
for the outside, every consumer declares the contract it takes, and each
contract reads back what it writes."""
import dataclasses
import typing
import uuid

import pytest

from services.shared import contracts
from services.shared.events import DurableEventHandler
from tests.unit.test_realtime_reliability import event_handlers, service_classes


def consumed_contracts():
    return {handler.contract for service in service_classes() for _, handler in event_handlers(service)
            if isinstance(handler, DurableEventHandler)}


def test_every_event_handler_declares_its_contract():
    undeclared = sorted(name for service in service_classes() for name, handler in event_handlers(service)
                        if getattr(handler, "contract", None) is None)
    assert undeclared == []


def test_every_event_published_is_consumed_or_marked_as_for_the_outside():
    consumed = consumed_contracts()
    unheard = sorted(f"{contract.source}.{contract.event_type}" for contract in contracts.every_contract()
                     if contract not in consumed and not contract.outside)
    assert unheard == []


def test_no_event_marked_for_the_outside_is_consumed_inside():
    # A consumer appearing for one means the mark is out of date.
    consumed = consumed_contracts()
    assert sorted(contract.event_type for contract in contracts.every_contract()
                  if contract.outside and contract in consumed) == []


def test_event_types_are_unique_per_source():
    keys = [(contract.source, contract.event_type) for contract in contracts.every_contract()]
    assert len(keys) == len(set(keys))


def example(annotation):
    """A valid value of a contract field's type."""
    if typing.get_origin(annotation) is typing.Union or isinstance(annotation, type(int | None)):
        return example(next(arg for arg in typing.get_args(annotation) if arg is not type(None)))
    if typing.get_origin(annotation) is list:
        return [example(typing.get_args(annotation)[0])]
    if dataclasses.is_dataclass(annotation):
        return annotation(**{field.name: example(field.type) for field in dataclasses.fields(annotation)})
    if getattr(annotation, "__name__", "") == "Id":
        return str(uuid.uuid4())
    return {int: 3, str: "text", dict: {"key": "value"}, bool: True}[typing.get_origin(annotation) or annotation]


def built(contract):
    hints = typing.get_type_hints(contract)
    return contract(**{field.name: example(hints[field.name]) for field in dataclasses.fields(contract)
                       if field.name != "envelope_id" and field.init})


@pytest.mark.parametrize("contract", contracts.every_contract(), ids=lambda contract: contract.event_type)
def test_a_recorded_event_reads_back_as_itself_with_its_envelope_id(contract):
    event = built(contract)
    envelope_id = str(uuid.uuid4())
    received = contract.from_payload(dict(event.to_payload(), **{contracts.ENVELOPE_ID: envelope_id}))
    assert received == dataclasses.replace(event, envelope_id=envelope_id)


@pytest.mark.parametrize("contract", contracts.every_contract(), ids=lambda contract: contract.event_type)
def test_a_payload_missing_a_field_or_its_envelope_id_is_refused(contract):
    payload = built(contract).to_payload()
    with pytest.raises(contracts.MalformedEvent):
        contract.from_payload(payload)  # no envelope id
    required = [field.name for field in dataclasses.fields(contract)
                if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING]
    for name in required:
        broken = {key: value for key, value in payload.items() if key != name}
        with pytest.raises(contracts.MalformedEvent):
            contract.from_payload(dict(broken, **{contracts.ENVELOPE_ID: str(uuid.uuid4())}))


def test_an_id_must_be_a_canonical_uuid():
    payload = {"follower_id": "not-a-uuid", "followee_id": str(uuid.uuid4()),
               contracts.ENVELOPE_ID: str(uuid.uuid4())}
    with pytest.raises(contracts.MalformedEvent, match="follower_id"):
        contracts.UserFollowed.from_payload(payload)


def test_an_event_recorded_before_the_envelope_id_was_renamed_is_read():
    envelope_id, follower, followee = (str(uuid.uuid4()) for _ in range(3))
    event = contracts.UserFollowed.from_payload(
        {"event_id": envelope_id, "follower_id": follower, "followee_id": followee})
    assert event == contracts.UserFollowed(envelope_id=envelope_id, follower_id=follower, followee_id=followee)
