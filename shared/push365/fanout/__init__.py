"""Fan-out: a notification accepted by ``send`` reaches each device through Pub/Sub and ``deliver``.

``send`` stores the notification record and publishes one *plan* message; ``deliver`` turns the
plan into stored batches of at most 500 devices, publishes one *batch* message each, and sends
each batch with per-device claims, so that Pub/Sub's at-least-once delivery never becomes a
second notification on a device.
"""
