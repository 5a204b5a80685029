"""Browsers that opted in to push notifications (their FCM instance ids), and opting out."""
