"""Tools the geolocation agent can call: EXIF, OCR, text clues, GeoNames gazetteer, geocoding.

Each tool module has a pure core plus backends behind one interface; heavy resources (OCR models,
indexes, embedders) load lazily on first use, never at import. ``tools.registry`` maps names to tools
and renders the JSON schemas a model sees.
"""
