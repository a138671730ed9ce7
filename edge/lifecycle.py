"""The state of an async resource that can be entered once (like aiomqtt's `Client` and httpx's
`ClientState`): drivers, serial lines and scanners make a new instance to reconnect."""


class Lifecycle:
    """unopened -> open -> closed, with clear errors for every other order of calls."""

    def __init__(self, name: str) -> None:
        self._name = name
        self.state = "unopened"

    def enter(self) -> None:
        """Mark the resource open; entering twice is an error."""
        if self.state != "unopened":
            raise RuntimeError(
                f"{self._name} is {self.state}: it can be entered only once, "
                "create a new one to reconnect"
            )
        self.state = "open"

    def require_open(self) -> None:
        """Refuse use outside `async with`."""
        if self.state != "open":
            raise RuntimeError(f"{self._name} is {self.state}: use it inside `async with`")

    def close(self) -> None:
        """Mark the resource closed (for good)."""
        self.state = "closed"
