"""MQTT topic filters: validation, matching and overlap (pure).

A filter is topic levels separated by `/`; `+` stands for exactly one level and `#` (last level
only) for any number of levels, including none (`a/#` matches `a`). Wildcards at the first level
do not match topics that start with `$` (`$SYS/...`), see MQTT 3.1.1 section 4.7.2:
http://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html#_Toc398718107
"""

MAX_TOPIC_BYTES = 65535


def check_filter(value: str) -> str:
    """A valid topic filter, or ValueError saying what is wrong with it."""
    if not value:
        raise ValueError("a topic filter must not be empty")
    if len(value.encode()) > MAX_TOPIC_BYTES:
        raise ValueError(f"a topic filter is at most {MAX_TOPIC_BYTES} bytes")
    if "\x00" in value:
        raise ValueError("a topic filter must not contain NUL")
    levels = value.split("/")
    for index, level in enumerate(levels):
        if level == "#" and index != len(levels) - 1:
            raise ValueError(f"{value!r}: '#' is allowed only as the last level")
        if level not in ("+", "#") and ("+" in level or "#" in level):
            raise ValueError(f"{value!r}: '+' and '#' must fill a whole level, as in 'a/+/b/#'")
    return value


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether `topic` (no wildcards) matches `topic_filter`."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    wanted = topic_filter.split("/")
    levels = topic.split("/")
    for index, level in enumerate(wanted):
        if level == "#":
            return True
        if index >= len(levels) or level not in ("+", levels[index]):
            return False
    return len(levels) == len(wanted)


def filters_overlap(first: str, second: str) -> bool:
    """Whether some topic matches both filters (so a message could belong to either)."""
    for one, other in ((first, second), (second, first)):
        if one.startswith("$") and other[:1] in ("+", "#"):
            return False
    a, b = first.split("/"), second.split("/")
    for index in range(max(len(a), len(b))):
        left = a[index] if index < len(a) else None
        right = b[index] if index < len(b) else None
        if left == "#" or right == "#":
            return True
        if left is None or right is None:
            return False
        if "+" not in (left, right) and left != right:
            return False
    return True
