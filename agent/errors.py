"""The root exception of the agent. Foreign errors are wrapped at the boundary with `from`."""


class AgentError(Exception):
    """Anything the agent refuses or cannot do, with a message that says how to fix it."""
