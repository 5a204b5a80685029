"""Dataverse (Dynamics 365) webhook bodies: recognising and parsing ``RemoteExecutionContext``."""

from push365.dataverse.context import (
    SIZE_EXCEEDED_HEADER,
    Entity,
    EntityReference,
    ExecutionContext,
    Money,
    NotHandled,
    OptionSetValue,
    Value,
    display_text,
    is_execution_context,
    parse_entity,
    parse_execution_context,
    parse_value,
)

__all__ = [
    "SIZE_EXCEEDED_HEADER",
    "Entity",
    "EntityReference",
    "ExecutionContext",
    "Money",
    "NotHandled",
    "OptionSetValue",
    "Value",
    "display_text",
    "is_execution_context",
    "parse_entity",
    "parse_execution_context",
    "parse_value",
]
