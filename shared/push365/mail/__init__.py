"""Transactional messages to organization administrators: the mail port, its Amazon SES adapter
(boto3, imported only when a message is sent), a local outbox for ``make dev``, and the messages.

The privacy policy: administrators' contact details are used for important alerts, technical
notices, updates and administrative messages. Mail never carries an API key or notification content.
"""
