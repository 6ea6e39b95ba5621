"""Notices: the outbox, the channels (email, SMS, webhooks), templates, and the worker."""
