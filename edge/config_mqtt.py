"""The `[mqtt]` broker section and `driver = "mqtt"` devices of the site config."""

from typing import Annotated, Literal

from pydantic import Field

from edge.config_types import Duration, Name, Section


class MqttConfig(Section):
    """How the gateway reaches its MQTT broker (one connection for every MQTT device)."""

    url: str
    client_id: Annotated[str, Field(min_length=1, max_length=64)]
    clean_session: bool = False
    keepalive: Duration = 30.0
    reconnect_initial: Duration = 1.0
    reconnect_max: Duration = 60.0


class MqttDeviceConfig(Section):
    """One MQTT device: the topics it publishes on and how its payloads become events."""

    id: Name
    driver: Literal["mqtt"]
    topic: Annotated[str, Field(min_length=1)]

    @property
    def address(self) -> str:
        """Where the device is, for logs and the diagnostics page."""
        return self.topic
