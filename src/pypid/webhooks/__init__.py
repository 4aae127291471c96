"""Events out: the webhooks, readers of the journal, their deliveries, and what they show."""
