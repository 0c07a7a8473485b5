"""The local web workbench (``geolocate serve``): a FastAPI app over the session store."""
