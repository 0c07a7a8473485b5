"""The geolocation agent: the Episode environment, the Chain-of-Region state machine, the action
grammar, policies, the LangGraph wiring and the CLI."""
