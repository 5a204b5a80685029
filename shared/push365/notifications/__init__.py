"""Notifications: sending to users' devices, event rules, records without content, receipts."""
