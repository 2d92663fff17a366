"""The scored joints of a hand: their names, in the order reports list them, and their types.

The scorer's vocabulary, shared by the phantom (which draws them) and the detectors (which find
them): it belongs to neither.
"""

from __future__ import annotations

from typing import Literal

JointType = Literal["PIP", "IP", "MCP"]

#: The ten scored joints of one hand, in the order reports list them.
JOINT_NAMES: tuple[str, ...] = (
    "IP",
    "PIP2",
    "PIP3",
    "PIP4",
    "PIP5",
    "MCP1",
    "MCP2",
    "MCP3",
    "MCP4",
    "MCP5",
)


def joint_type(name: str) -> JointType:
    """``PIP3`` → ``PIP``; ``IP`` → ``IP``; ``MCP1`` → ``MCP``."""
    if name == "IP":
        return "IP"
    return "PIP" if name.startswith("PIP") else "MCP"
