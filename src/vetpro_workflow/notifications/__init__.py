"""Notifications: which prompts a move enqueues, how they are rendered and sent."""
