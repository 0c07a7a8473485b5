"""GRPO training of the planner over Chain-of-Region episodes (labels, rewards, rollouts)."""
