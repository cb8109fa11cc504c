"""Which events become messages (policy) and how they reach Slack."""
