"""Runnable examples of faye_sync: echo, echo_client, clock and the chat demo."""
