"""The sans-I/O core: frame layers and handshakes. No sockets, threads or clocks here."""
