"""Who is asking and what they may do, applied to requests."""
