"""Small WSGI applications that the server tests run (by ``"module:attr"``)."""
