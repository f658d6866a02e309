"""Notifications: tell people and systems what a Rollout did.

* `triggers`: which events a status change makes (old status -> new status, pure).
* `subscriptions`: who wants which event (the Rollout's annotations) and the delivery
  records kept in `status.notifications` (pure).
* `config`: the services a controller can deliver to (its ConfigMap and Secret, pure).
* `payloads`: the bodies sent to a generic webhook, Slack and Microsoft Teams (pure).
* `delivery`: a background queue that POSTs them with retries (the only I/O here).
"""
