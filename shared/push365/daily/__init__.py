"""Daily delivery counts per organization, kept as the events happen (the delivery report reads
them: its cost follows the days asked for, not the notifications sent)."""
