"""The organization's Dynamics system users: synced, corrected, removed."""
