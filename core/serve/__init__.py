"""Running the gateway: the runtime, the HTTP server and app, the event loop and logs."""
