"""Webhooks of ended jobs (docs/architecture.md §5.12): the notification written in the transaction
that ends a job (:mod:`.outbox`), the sender that posts it (:mod:`.sender`, :mod:`.posting`) and the
route that shows its attempts (:mod:`.routes`)."""
