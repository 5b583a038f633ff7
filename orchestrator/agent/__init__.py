"""Site agents: the server's registry of agents and what they deliver, the protocol between
them, and the agent's own side (docs/agents.md)."""
