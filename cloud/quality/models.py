"""Moved to `cloud.incidents.models` (the sink); kept until every caller is re-pointed."""

from cloud.incidents.models import Incident, IncidentKind

__all__ = ["Incident", "IncidentKind"]
