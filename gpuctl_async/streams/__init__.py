"""The multiplexed socket: many log subscriptions and job feeds over one WebSocket.

- ``protocol``: the client's messages (``subscribe``, ``unsubscribe``) and their validation;
- ``multiplex``: one socket's subscriptions, each authorized, queued and ended on its own.

The frames are the log WebSocket's and the job feed's with the subscription ``id`` added; the
sessions, the shared upstream streams and the queues are those of ``gpuctl_async.logs``.
"""
