"""Events out: the outbox of the webhooks, its deliveries, and what they show."""
