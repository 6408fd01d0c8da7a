"""Media of MMS: fetching them safely, storing them in the Object Store, signed links."""
